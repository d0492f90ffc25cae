"""Talk to the Steward: fetch a challenge, POST the CSR, read the certificate chain or the reasons for refusing.

TLS to the Steward is always verified (:func:`enarx.cabundle.client_context`): the system roots plus the
``--ca-bundle`` / ``ENARX_CA_BUNDLE`` PEM the host relayed in the LAUNCH message, for Stewards under a private
CA. Plain http only to loopback (:func:`enarx.cabundle.check_service_url`).

Freshness: the keep first asks ``GET <steward>/challenge``. A Steward of ours answers a nonce, which the keep
binds into report_data with its key and sends in the CSR (:mod:`enarx.attestation.freshness`); an Enarx
Steward answers 404 (or 405), and the keep then binds its key alone, as Enarx does.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.envelope import Certs
from enarx.errors import EnarxError, KeepError

TIMEOUT = 30.0
MAX_RESPONSE = 1 << 20
MAX_CHALLENGE = 4096


def tls_context(url: str, ca_pem: str | None) -> ssl.SSLContext | None:
    """The verifying context for an https Steward (``None`` for loopback http); the URL rule is checked here."""
    from enarx import cabundle

    try:
        cabundle.check_service_url(url, "steward")
        return cabundle.client_context(cadata=ca_pem) if urlsplit(url).scheme == "https" else None
    except EnarxError as exc:
        raise KeepError(str(exc)) from None


def challenge_url(url: str) -> str:
    """``<steward>/challenge`` beside the Steward's POST path (``https://h/steward`` → ``…/steward/challenge``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/challenge", "", ""))


def _unreachable(url: str, exc: BaseException) -> KeepError:
    from enarx import cabundle

    reason = getattr(exc, "reason", exc)
    hint = ""
    if cabundle.refused(exc):
        reason, hint = "connection refused", ("; check that the Steward is running there and the steward URL "
                                              "(Enarx.toml's `steward`, or --steward)")
    elif isinstance(reason, ssl.SSLCertVerificationError):
        hint = ("; if the Steward's certificate comes from a private CA, give its PEM with --ca-bundle or "
                "ENARX_CA_BUNDLE")
    return KeepError(f"cannot reach the steward at {url}: {reason}{hint}")


def fetch_challenge(url: str, context: ssl.SSLContext | None) -> bytes | None:
    """A nonce from the Steward, or ``None`` when it offers none (an Enarx Steward: 404/405)."""
    from enarx.attestation import freshness

    where = challenge_url(url)
    request = urllib.request.Request(where, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            body = response.read(MAX_CHALLENGE + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):
            return None
        raise KeepError(f"steward refused a challenge (HTTP {exc.code}): {_reasons(exc.read(65536))}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(where, exc) from None
    try:
        doc = json.loads(body) if len(body) <= MAX_CHALLENGE else None
        return freshness.decode(doc["nonce"])
    except (ValueError, TypeError, KeyError, RecursionError):
        raise KeepError(f"steward answered {where} with something that is not a challenge") from None


def request_certificate(url: str, csr_der: bytes, *, context: ssl.SSLContext | None = None) -> list[x509.Certificate]:
    """The issued chain, leaf first (the Steward answers root first). Refusals raise with the reasons."""
    request = urllib.request.Request(url, data=csr_der, method="POST",
                                     headers={"Content-Type": "application/pkcs10"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            body = response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise KeepError(f"steward refused the keep (HTTP {exc.code}): {_reasons(exc.read(65536))}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(url, exc) from None
    if len(body) > MAX_RESPONSE:
        raise KeepError("steward response too large")
    try:
        chain = [x509.load_der_x509_certificate(c.dump()) for c in Certs.load(body)]
    except (ValueError, TypeError) as exc:
        raise KeepError(f"steward answered something that is not a certificate chain: {exc}") from None
    if not chain:
        raise KeepError("steward answered an empty certificate chain")
    return list(reversed(chain))


def certify(url: str, source: Any, *, ca_pem: str | None = None,
            isolation: str | None = None) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    """The whole keep side of attestation: a fresh key, evidence binding it (and the Steward's nonce, when it
    offers one), the CSR (declaring ``isolation``, a keep without any), and the Steward's chain for that key
    (leaf first)."""
    from enarx.attestation.binding import report_data_for
    from enarx.runtime.attest.csr import build_csr

    context = tls_context(url, ca_pem)
    nonce = fetch_challenge(url, context)
    key = ec.generate_private_key(source.curve())
    oid, value = source.extension(report_data_for(key, source.tee, nonce))
    csr = build_csr(key, oid, value, nonce=nonce, isolation=isolation)
    return key, request_certificate(url, csr, context=context)


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
    if doc.get("reason"):
        parts.append(f"reason: {doc['reason']}")
    return " — ".join(parts)
