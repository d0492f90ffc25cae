"""The keep's side of the KBS protocol: auth → attest → fetch resources, all inside the keep.

``evidence_for(report_data) -> tee-evidence JSON`` is the keep's evidence source; the ephemeral key is
made here, for this one attestation, and never leaves the process. ``package`` (the digest of the
manifest the keep has verified) goes into runtime-data as ``enarx-package``: the broker releases a
package's key only to a keep bound to that package. Redirects are never followed (a redirect could carry
the session cookie or token elsewhere, or downgrade https to http).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from enarx import cabundle
from enarx.errors import EnarxError
from enarx.kbs import evidence, teekey

PROTOCOL_VERSION = "0.1.1"
TIMEOUT = 30.0
MAX_RESPONSE = 4 << 20


class KbsError(EnarxError):
    """The broker refused, or could not be reached; the message carries its reasons."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx surfaces as an HTTPError


class KbsClient:
    def __init__(self, url: str, *, ca_bundle: str | None = None, ca_bundle_pem: str | None = None):
        cabundle.check_service_url(url, "key broker")
        self.url = url.rstrip("/")
        context = cabundle.client_context(ca_bundle, cadata=ca_bundle_pem) if url.startswith("https") else None
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects)
        self._cookie: str | None = None
        self._private: Any = None
        self.token: str | None = None

    def _call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._cookie:
            request.add_header("Cookie", self._cookie)
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                raw = response.read(MAX_RESPONSE + 1)
                jar = SimpleCookie(response.headers.get("Set-Cookie", ""))
                if "kbs-session-id" in jar:
                    self._cookie = f"kbs-session-id={jar['kbs-session-id'].value}"
        except urllib.error.HTTPError as exc:
            detail, reason = _problem(exc.read(65536))
            raise KbsError(f"key broker refused {method} {path} (HTTP {exc.code}): {detail}", exc.code,
                           reason) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = ("connection refused; check that the key broker is running there and the --kbs URL"
                      if cabundle.refused(exc) else getattr(exc, "reason", exc))
            raise KbsError(f"cannot reach the key broker at {self.url}: {reason}") from None
        if len(raw) > MAX_RESPONSE:
            raise KbsError("key broker response too large")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise KbsError(f"key broker answered {method} {path} with something that is not JSON") from None

    def attest(self, tee: str, evidence_for: Callable[[bytes], dict[str, Any]], *, package: str | None = None,
               isolation: str | None = None) -> str:
        """Run auth + attest; returns the attestation token. The report_data binds nonce, key and package (and
        ``isolation``, the label of a keep that isolates nothing: :mod:`enarx.isolation`)."""
        challenge = self._call("POST", "/kbs/v0/auth", {"version": PROTOCOL_VERSION, "tee": tee, "extra-params": ""})
        if not isinstance(challenge, dict) or not isinstance(challenge.get("nonce"), str):
            raise KbsError("key broker answered auth without a nonce")
        self._private, public = teekey.generate()
        runtime_data: dict[str, Any] = {"nonce": challenge["nonce"], "tee-pubkey": public}
        if package is not None:
            runtime_data[evidence.PACKAGE_MEMBER] = package
        if isolation is not None:
            runtime_data[evidence.ISOLATION_MEMBER] = isolation
        tee_evidence = evidence_for(evidence.report_data_for(runtime_data))
        result = self._call("POST", "/kbs/v0/attest", {"runtime-data": runtime_data, "tee-evidence": tee_evidence})
        if not isinstance(result, dict) or not isinstance(result.get("token"), str):
            raise KbsError("key broker answered attest without a token")
        self.token = result["token"]
        return self.token

    def register(self, path: str, manifest_token: str, content_key: bytes, bearer: str) -> dict[str, Any]:
        """The publisher's side: register ``content_key`` for the package of ``manifest_token`` at ``path``,
        authenticated with an OIDC bearer token. The same registration again is accepted."""
        import base64

        body = {"manifest": manifest_token, "key": base64.urlsafe_b64encode(content_key).decode().rstrip("=")}
        answer = self._call("POST", f"/kbs/v0/resource/{path}", body, {"Authorization": f"Bearer {bearer}"})
        if not isinstance(answer, dict):
            raise KbsError("key broker answered the registration with something that is not a JSON object")
        return answer

    def resource(self, path: str, *, use_token: bool = False) -> bytes:
        """The plaintext of resource ``<repository>/<type>/<tag>`` (unwrapped with the keep's key)."""
        if self._private is None:
            raise KbsError("attest before asking for resources")
        headers = {"Authorization": f"Bearer {self.token}"} if use_token else {}
        response = self._call("GET", f"/kbs/v0/resource/{path}", headers=headers)
        try:
            return teekey.unwrap(response, self._private)
        except teekey.TeeKeyError as exc:
            raise KbsError(str(exc)) from None


def _problem(body: bytes) -> tuple[str, str | None]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace").strip()[:300] or "no reason given", None
    if not isinstance(doc, dict):
        return str(doc)[:300], None
    detail = str(doc.get("detail") or doc.get("title") or "refused")
    return detail, doc.get("reason") if isinstance(doc.get("reason"), str) else None
