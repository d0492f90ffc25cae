"""Talk to the Steward: POST the CSR, read the certificate chain, or the Steward's reasons for refusing."""

from __future__ import annotations

import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cryptography import x509

from enarx.attestation.envelope import Certs
from enarx.errors import KeepError

TIMEOUT = 30.0
MAX_RESPONSE = 1 << 20


def check_url(url: str) -> None:
    """https only — plain http is allowed to loopback addresses (development Stewards), nowhere else."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "http" and loopback:
        return
    raise KeepError(f"refusing to use an unencrypted steward url {url!r}: use https (http only to loopback)")


def request_certificate(url: str, csr_der: bytes, *, ca_file: str | None = None,
                        context: ssl.SSLContext | None = None) -> list[x509.Certificate]:
    """The issued chain, leaf first (the Steward answers root first). Refusals raise with the reasons.
    ``context``: the TLS client context to use (e.g. with the launch's CA bundle)."""
    check_url(url)
    if url.startswith("https"):
        context = context or ssl.create_default_context(cafile=ca_file)
    else:
        context = None
    request = urllib.request.Request(url, data=csr_der, method="POST",
                                     headers={"Content-Type": "application/pkcs10"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            body = response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise KeepError(f"steward refused the keep (HTTP {exc.code}): {_reasons(exc.read(65536))}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KeepError(f"cannot reach the steward at {url}: {reason}") from None
    if len(body) > MAX_RESPONSE:
        raise KeepError("steward response too large")
    try:
        chain = [x509.load_der_x509_certificate(c.dump()) for c in Certs.load(body)]
    except (ValueError, TypeError) as exc:
        raise KeepError(f"steward answered something that is not a certificate chain: {exc}") from None
    if not chain:
        raise KeepError("steward answered an empty certificate chain")
    return list(reversed(chain))


def _reasons(body: bytes) -> str:
    """The problem document's detail and failed checks, on one line."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace").strip()[:300] or "no reason given"
    if not isinstance(doc, dict):
        return str(doc)[:300]
    parts = [str(doc.get("detail") or doc.get("title") or doc.get("reason") or "refused")]
    failed = doc.get("failed_checks") or doc.get("checks") or []
    names = []
    for item in failed if isinstance(failed, list) else []:
        if isinstance(item, dict):
            text = str(item.get("name", "?"))
            if item.get("expected") is not None or item.get("actual") is not None:
                text += f" (expected {item.get('expected')}, actual {item.get('actual')})"
            names.append(text)
        else:
            names.append(str(item))
    if names:
        parts.append("failed: " + "; ".join(names))
    return " — ".join(parts)
