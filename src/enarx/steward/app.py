"""The Steward as an ASGI application (Starlette).

Routes: ``GET /`` health (200, empty); ``POST /`` with ``application/pkcs10`` (DER CSR → DER
``SEQUENCE OF Certificate`` = [CA, issued]) or ``application/vnd.steward.pkcs10-bundle.v1`` (DER
``SEQUENCE OF CertificationRequest`` → DER ``SEQUENCE { chain SEQUENCE OF Certificate, issued SEQUENCE
OF Certificate }``); ``GET /ca`` the CA certificate (PEM, or DER when ``Accept: application/pkix-cert``);
``GET /metrics`` Prometheus;
``GET /challenge`` a fresh nonce (JSON ``{"nonce", "expires", "binding"}``, see
:mod:`enarx.attestation.freshness`) that a keep binds into its evidence with its key. Refusals are RFC 9457 ``application/problem+json``: ``type``, ``title``,
``status``, ``detail``, plus ``reason`` (stable token), ``checks`` (failed checks) and ``warnings``.
Other content types → 415, bodies over ``max_body`` → 413 (answered before the body is read). Decisions
run off the event loop in a bounded :class:`DecisionPool`; when it and its queue are full the answer is 503
with ``Retry-After``, before the body is read. One JSON log line per decision on the
``enarx.steward.decision`` logger (no keys: only the SHA-256 of the CSR's SubjectPublicKeyInfo).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from enarx.attestation.der import seq
from enarx.steward.service import Issued, Refusal, Steward
from enarx.web.problem import HttpProblem, read_body
from enarx.web.problem import problem as web_problem

CT_PKCS10 = "application/pkcs10"
CT_BUNDLE = "application/vnd.steward.pkcs10-bundle.v1"
CT_CHAIN = "application/pkix-pkipath"
#: Real CSRs are 1-20 KB (an SGX CSR with its CRLs and TCB info: 13 KB). Decoding costs several copies of
#: the body (asn1crypto slices each nesting level), so the limit also bounds the memory of each decision.
MAX_BODY = 256 << 10
VERIFY_THREADS = 2
QUEUE_LIMIT = 32
RETRY_AFTER = 1
PROBLEM_BASE = "urn:enarx:steward:problem:"
TITLES = {400: "Bad Request", 401: "No attestation evidence", 403: "Attestation refused",
          413: "Request too large", 415: "Unsupported content type", 500: "Internal error",
          503: "Steward busy"}

log = logging.getLogger("enarx.steward.decision")


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("steward_decisions", "Attestation decisions", ["outcome", "tee", "reason"],
                                 registry=self.registry)
        self.latency = Histogram("steward_request_seconds", "Time to decide on a POST", ["outcome"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class DecisionPool:
    """Decisions run here, never on the event loop: ``threads`` at a time and at most ``queue`` waiting.

    A request takes its place *before* its body is read, so the Steward holds at most
    ``threads + queue`` bodies (each ≤ ``max_body``) however many clients send at once; past that it
    answers 503 with ``Retry-After`` at once. The counter lives on the event loop's thread: no lock.
    """

    def __init__(self, threads: int = VERIFY_THREADS, queue: int = QUEUE_LIMIT, retry_after: int = RETRY_AFTER):
        self.capacity = threads + queue
        self.retry_after = retry_after
        self.taken = 0
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="steward-decide")

    def take(self) -> None:
        """Reserve a place, or refuse with 503 + Retry-After."""
        if self.taken >= self.capacity:
            raise HttpProblem(503, "busy", f"the Steward is deciding on {self.taken} requests already; retry in "
                              f"{self.retry_after} s", headers={"Retry-After": str(self.retry_after)})
        self.taken += 1

    def give_back(self) -> None:
        self.taken -= 1

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


def _logged(issued: Issued) -> dict[str, Any]:
    """What the decision log says of an issued certificate: which one, until when, and how far to trust it
    (a keep's own word that it is not isolated among that: the operator sees such keeps in the log)."""
    entry = {"serial": f"{issued.cert.serial_number:032x}", "spki_sha256": issued.spki_sha256,
             "not_after": issued.cert.not_valid_after_utc.isoformat(), "tcb_status": issued.claims["tcb_status"],
             "insecure": issued.claims["insecure"]}
    if "isolation" in issued.claims:
        entry["isolation"] = issued.claims["isolation"]
    return entry


def problem(status: int, reason: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response with the Steward's problem type URIs and titles."""
    return web_problem(status, reason, detail, base=PROBLEM_BASE, title=TITLES.get(status), **extra)


def create_app(steward: Steward, *, max_body: int = MAX_BODY, pool: DecisionPool | None = None) -> Starlette:
    """The ASGI app; ``steward`` holds the CA, verifier and policy; ``pool`` where decisions run."""
    metrics = _Metrics()
    pool = pool or DecisionPool()
    ca_der = steward.config.ca.der

    def record(request: Request, started: float, outcome: str, status: int, *, reason: str, tee: str | None,
               issued: list[Issued] = (), refusal: Refusal | None = None) -> None:
        elapsed = time.perf_counter() - started
        metrics.decisions.labels(outcome, tee or "none", reason).inc()
        metrics.latency.labels(outcome).observe(elapsed)
        line: dict[str, Any] = {
            "event": "steward.decision", "outcome": outcome, "status": status, "reason": reason, "tee": tee,
            "client": request.client.host if request.client else None,
            "content_type": request.headers.get("content-type"), "ms": round(elapsed * 1000, 3),
            "policy": steward.config.policy_name,
        }
        if issued:
            line["certs"] = [_logged(i) for i in issued]
        if refusal is not None:
            line["detail"] = refusal.detail
            line["failed_checks"] = [c.name for c in refusal.checks]
            if refusal.index is not None:
                line["index"] = refusal.index
        log.info(json.dumps(line, sort_keys=True))

    async def health(request: Request) -> Response:
        return Response(b"", status_code=200)

    async def challenge(request: Request) -> Response:
        issued = steward.config.challenges.issue()
        return JSONResponse(issued.to_json(), headers={"Cache-Control": "no-store"})

    async def ca(request: Request) -> Response:
        if "application/pkix-cert" in request.headers.get("accept", ""):
            return Response(ca_der, media_type="application/pkix-cert")
        return Response(steward.config.ca.pem, media_type="application/x-pem-file")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def submit(request: Request) -> Response:
        started = time.perf_counter()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        taken = False
        try:
            if ctype not in (CT_PKCS10, CT_BUNDLE):
                raise Refusal(415, "content-type", f"content type {ctype or '(none)'!r} is not {CT_PKCS10} "
                              f"or {CT_BUNDLE}")
            pool.take()
            taken = True
            body = await read_body(request, max_body)
            if ctype == CT_PKCS10:
                issued = [await pool.run(steward.attest, body)]
                payload = seq(ca_der, issued[0].der)
            else:
                issued = await pool.run(steward.attest_bundle, body)
                payload = seq(seq(ca_der), seq(*(i.der for i in issued)))
        except Refusal as refusal:
            record(request, started, "refused", refusal.status, reason=refusal.reason, tee=refusal.tee,
                   refusal=refusal)
            extra: dict[str, Any] = {"checks": [c.to_json() for c in refusal.checks]}
            if refusal.warnings:
                extra["warnings"] = refusal.warnings
            if refusal.index is not None:
                extra["index"] = refusal.index
            return problem(refusal.status, refusal.reason, refusal.detail, **extra)
        except HttpProblem as exc:
            record(request, started, "refused", exc.status, reason=exc.reason, tee=None)
            return problem(exc.status, exc.reason, exc.detail, headers=exc.headers, **exc.extra)
        except Exception:
            logging.getLogger("enarx.steward").exception("internal error while deciding")
            record(request, started, "error", 500, reason="internal", tee=None)
            return problem(500, "internal", "internal error")
        finally:
            if taken:
                pool.give_back()
        record(request, started, "issued", 200, reason="ok", tee=issued[0].claims["tee"], issued=issued)
        return Response(payload, media_type=CT_CHAIN)

    routes = [
        Route("/", health, methods=["GET"]),
        Route("/", submit, methods=["POST"]),
        Route("/ca", ca, methods=["GET"]),
        Route("/challenge", challenge, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.steward = steward
    app.state.metrics = metrics
    app.state.pool = pool
    return app
