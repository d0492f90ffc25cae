"""The broker as an ASGI application (Starlette), speaking Trustee's KBS protocol.

Routes: ``POST /kbs/v0/auth`` (Request → Challenge + ``Set-Cookie: kbs-session-id``), ``POST
/kbs/v0/attest`` (Attestation → ``{"token": EAR}``), ``GET /kbs/v0/resource/<repository>/<type>/<tag>``
(cookie or ``Authorization: Bearer <EAR>`` → flattened JWE), ``POST`` to the same path (publisher
registration with an OIDC bearer token), ``GET /.well-known/jwks.json`` (the token key), ``GET /health``.
Refusals: ``application/problem+json`` with ``reason`` and the failed ``checks``. One JSON log line per
decision on ``enarx.kbs.decision`` — never a key, a token or evidence bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from enarx.kbs.service import Broker, KbsRefusal
from enarx.web.problem import HttpProblem, problem, read_body

MAX_BODY = 4 << 20
COOKIE = "kbs-session-id"
PROBLEM_BASE = "urn:enarx:kbs:problem:"
_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")

log = logging.getLogger("enarx.kbs.decision")


def _refused(refusal: KbsRefusal) -> JSONResponse:
    return problem(refusal.status, refusal.reason, refusal.detail, base=PROBLEM_BASE,
                   checks=[c.to_json() for c in refusal.checks])


async def _json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise KbsRefusal(415, "content-type", f"content type {ctype or '(none)'!r} is not application/json")
    try:
        body = await read_body(request, MAX_BODY)
    except HttpProblem as exc:
        raise KbsRefusal(exc.status, exc.reason, exc.detail) from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise KbsRefusal(400, "malformed", "the request body is not JSON") from None


def _record(event: str, outcome: str, **fields: Any) -> None:
    log.info(json.dumps({"event": f"kbs.{event}", "outcome": outcome, **fields}, sort_keys=True))


def _session_tag(session_id: str | None) -> str | None:
    return hashlib.sha256(session_id.encode()).hexdigest()[:16] if session_id else None


def create_app(broker: Broker) -> Starlette:
    async def health(request: Request) -> Response:
        return Response(b"", status_code=200)

    async def jwks(request: Request) -> Response:
        return JSONResponse(broker.tokens.jwks(), media_type="application/jwk-set+json")

    async def auth(request: Request) -> Response:
        try:
            challenge = broker.auth(await _json(request))
        except KbsRefusal as refusal:
            _record("auth", "refused", reason=refusal.reason)
            return _refused(refusal)
        _record("auth", "challenged", tee=challenge.tee, session=_session_tag(challenge.cookie))
        response = JSONResponse({"nonce": challenge.nonce, "extra-params": ""})
        response.set_cookie(COOKIE, challenge.cookie, max_age=300, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def attest(request: Request) -> Response:
        session_id = request.cookies.get(COOKIE)
        try:
            body = await _json(request)
            session, token = await run_in_threadpool(broker.attest, session_id, body)
        except KbsRefusal as refusal:
            _record("attest", "refused", reason=refusal.reason, tee=refusal.tee, session=_session_tag(session_id),
                    failed_checks=[c.name for c in refusal.checks], detail=refusal.detail)
            return _refused(refusal)
        _record("attest", "attested", tee=session.tee, session=_session_tag(session_id),
                tcb_status=session.claims.tcb_status.value, package=session.package, isolation=session.isolation)
        return JSONResponse({"token": token})

    def _path(request: Request) -> str:
        parts = [request.path_params[k] for k in ("repository", "type", "tag")]
        if not all(_PART.fullmatch(p) for p in parts):
            raise KbsRefusal(400, "malformed", "resource path parts are 1-128 of [A-Za-z0-9._-]")
        return "/".join(parts)

    async def get_resource(request: Request) -> Response:
        session_id = request.cookies.get(COOKIE)
        path = None
        try:
            path = _path(request)
            wrapped, found = await run_in_threadpool(broker.resource, path, session_id,
                                                     request.headers.get("authorization"))
        except KbsRefusal as refusal:
            _record("resource", "refused", reason=refusal.reason, resource=path, tee=refusal.tee,
                    session=_session_tag(session_id), failed_checks=[c.name for c in refusal.checks])
            return _refused(refusal)
        _record("resource", "released", resource=path, package_id=found.package_id, session=_session_tag(session_id))
        return JSONResponse(wrapped)

    async def register(request: Request) -> Response:
        path = None
        try:
            path = _path(request)
            body = await _json(request)
            # the OIDC check may fetch the issuer's keys: off the event loop
            found, created = await run_in_threadpool(broker.register, path, request.headers.get("authorization"),
                                                     body)
        except KbsRefusal as refusal:
            _record("register", "refused", reason=refusal.reason, resource=path)
            return _refused(refusal)
        _record("register", "registered" if created else "unchanged", resource=path, owner=found.owner,
                package_id=found.package_id)
        return JSONResponse({"resource": path, "package_id": found.package_id,
                             "manifest_sha256": found.manifest_digest}, status_code=201 if created else 200)

    resource_path = "/kbs/v0/resource/{repository}/{type}/{tag}"
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/kbs/v0/auth", auth, methods=["POST"]),
        Route("/kbs/v0/attest", attest, methods=["POST"]),
        Route(resource_path, get_resource, methods=["GET"]),
        Route(resource_path, register, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.broker = broker
    return app
