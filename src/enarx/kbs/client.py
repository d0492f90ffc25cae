"""The keep's side of the KBS protocol: auth → attest → fetch resources, all inside the keep.

``evidence_for(report_data) -> tee-evidence JSON`` is the keep's evidence source; the ephemeral key is
made here, for this one attestation, and never leaves the process.
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


class KbsClient:
    def __init__(self, url: str, *, ca_bundle: str | None = None):
        cabundle.check_service_url(url, "key broker")
        self.url = url.rstrip("/")
        self._context = cabundle.client_context(ca_bundle) if url.startswith("https") else None
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
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self._context) as response:
                raw = response.read(MAX_RESPONSE + 1)
                jar = SimpleCookie(response.headers.get("Set-Cookie", ""))
                if "kbs-session-id" in jar:
                    self._cookie = f"kbs-session-id={jar['kbs-session-id'].value}"
        except urllib.error.HTTPError as exc:
            detail, reason = _problem(exc.read(65536))
            raise KbsError(f"key broker refused {method} {path} (HTTP {exc.code}): {detail}", exc.code,
                           reason) from None
        except (urllib.error.URLError, OSError) as exc:
            raise KbsError(f"cannot reach the key broker at {self.url}: {getattr(exc, 'reason', exc)}") from None
        if len(raw) > MAX_RESPONSE:
            raise KbsError("key broker response too large")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise KbsError(f"key broker answered {method} {path} with something that is not JSON") from None

    def attest(self, tee: str, evidence_for: Callable[[bytes], dict[str, Any]]) -> str:
        """Run auth + attest; returns the attestation token. The report_data binds nonce and key."""
        challenge = self._call("POST", "/kbs/v0/auth", {"version": PROTOCOL_VERSION, "tee": tee, "extra-params": ""})
        if not isinstance(challenge, dict) or not isinstance(challenge.get("nonce"), str):
            raise KbsError("key broker answered auth without a nonce")
        self._private, public = teekey.generate()
        runtime_data = {"nonce": challenge["nonce"], "tee-pubkey": public}
        tee_evidence = evidence_for(evidence.report_data_for(runtime_data))
        result = self._call("POST", "/kbs/v0/attest", {"runtime-data": runtime_data, "tee-evidence": tee_evidence})
        if not isinstance(result, dict) or not isinstance(result.get("token"), str):
            raise KbsError("key broker answered attest without a token")
        self.token = result["token"]
        return self.token

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
