"""AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) with a certificate chain to the AWS root.

Layout: ``COSE_Sign1 = [protected: bstr({1: -35}), unprotected: map, payload: bstr, signature: bstr(96)]``
(optionally CBOR tag 18). The payload is a CBOR map with ``module_id``, ``digest`` ("SHA384"),
``timestamp`` (ms since the epoch), ``pcrs`` ({index: 32/48/64-byte digest}), ``certificate`` (DER leaf),
``cabundle`` ([root, …, intermediate], DER) and optional ``public_key``, ``user_data``, ``nonce``.
The signature (raw r‖s) is over ``Sig_structure = ["Signature1", protected, h'', payload]``.

Nitro has no CRLs and no TCB: claims carry ``TcbStatus.UNKNOWN``. A debug-mode enclave reports PCR0–2 as
all zeros, which is what ``debug`` means here. Leaf certificates live three hours, so verify at the
document's timestamp to check recorded documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx.attestation import roots
from enarx.attestation.collateral import cached_cert, certificates_of
from enarx.attestation.model import (
    Check,
    Claims,
    CollateralSet,
    MalformedEvidence,
    TcbStatus,
    Tee,
    TrustAnchors,
    VerificationError,
)
from enarx.attestation.pki import CertificateFormatError, build_path, check_validity

ES384 = -35


@dataclass(frozen=True)
class NitroDocument:
    protected: bytes
    payload: bytes
    signature: bytes
    module_id: str
    digest: str
    timestamp: datetime
    pcrs: dict[int, bytes]
    certificate: bytes
    cabundle: list[bytes]
    public_key: bytes | None = None
    user_data: bytes | None = None
    nonce: bytes | None = None
    unprotected: dict[Any, Any] = field(default_factory=dict)


def _bytes(value: Any, what: str, optional: bool = False) -> bytes | None:
    if value is None and optional:
        return None
    if not isinstance(value, bytes):
        raise MalformedEvidence(f"Nitro document: {what} must be a byte string")
    return value


def parse(data: bytes) -> NitroDocument:
    """Parse a COSE_Sign1 Nitro attestation document; :class:`MalformedEvidence` on any structural error."""
    try:
        outer = cbor2.loads(bytes(data))
    except Exception as exc:  # noqa: BLE001 - cbor2 raises many types on hostile input
        raise MalformedEvidence(f"Nitro document: not CBOR: {exc}") from None
    if isinstance(outer, cbor2.CBORTag):
        if outer.tag != 18:
            raise MalformedEvidence(f"Nitro document: unexpected CBOR tag {outer.tag}")
        outer = outer.value
    if not isinstance(outer, list) or len(outer) != 4:
        raise MalformedEvidence("Nitro document: not a COSE_Sign1 array of four")
    protected, unprotected, payload, signature = outer
    protected = _bytes(protected, "protected header")
    payload = _bytes(payload, "payload")
    signature = _bytes(signature, "signature")
    try:
        header = cbor2.loads(protected) if protected else {}
        body = cbor2.loads(payload)
    except Exception as exc:  # noqa: BLE001 - cbor2 raises many types on hostile input
        raise MalformedEvidence(f"Nitro document: bad CBOR inside COSE_Sign1: {exc}") from None
    if not isinstance(header, dict) or header.get(1) != ES384:
        raise MalformedEvidence("Nitro document: protected header must say alg ES384 (-35)")
    if not isinstance(body, dict):
        raise MalformedEvidence("Nitro document: payload is not a map")
    for key in ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"):
        if key not in body:
            raise MalformedEvidence(f"Nitro document: payload lacks {key}")
    if not isinstance(body["module_id"], str) or not isinstance(body["digest"], str):
        raise MalformedEvidence("Nitro document: module_id and digest must be text")
    if not isinstance(body["timestamp"], int) or body["timestamp"] < 0:
        raise MalformedEvidence("Nitro document: timestamp must be a non-negative integer")
    pcrs = body["pcrs"]
    if not isinstance(pcrs, dict) or not all(isinstance(k, int) and isinstance(v, bytes) for k, v in pcrs.items()):
        raise MalformedEvidence("Nitro document: pcrs must map integers to byte strings")
    bundle = body["cabundle"]
    if not isinstance(bundle, list) or not all(isinstance(c, bytes) for c in bundle):
        raise MalformedEvidence("Nitro document: cabundle must be a list of DER certificates")
    try:
        when = datetime.fromtimestamp(body["timestamp"] / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        raise MalformedEvidence("Nitro document: timestamp out of range") from None
    return NitroDocument(
        protected=protected, payload=payload, signature=signature, module_id=body["module_id"],
        digest=body["digest"], timestamp=when, pcrs=dict(pcrs),
        certificate=_bytes(body["certificate"], "certificate"), cabundle=list(bundle),
        public_key=_bytes(body.get("public_key"), "public_key", True),
        user_data=_bytes(body.get("user_data"), "user_data", True),
        nonce=_bytes(body.get("nonce"), "nonce", True),
        unprotected=unprotected if isinstance(unprotected, dict) else {},
    )


def verify(data: bytes, collateral: CollateralSet | None, at: datetime,
           anchors: TrustAnchors) -> tuple[Claims, list[Check], list[str]]:
    doc = parse(data)
    checks: list[Check] = [Check("nitro.format", True, f"COSE_Sign1 ES384, module {doc.module_id}")]
    try:
        leaf = cached_cert(doc.certificate)
        bundle = [cached_cert(c) for c in doc.cabundle]
    except CertificateFormatError as exc:
        raise MalformedEvidence(f"Nitro document: {exc}") from None
    builtin, extra = roots.anchor_certs(anchors)
    try:
        path, anchor, chain_checks = build_path(leaf, bundle + certificates_of(collateral), builtin + extra)
        checks += chain_checks
        checks += check_validity(path, at)
    except VerificationError as exc:
        exc.checks = checks + exc.checks
        raise
    if len(doc.signature) != 96:
        raise VerificationError("Nitro document: ES384 signature must be 96 bytes", reason="signature",
                                checks=checks + [Check("nitro.signature", False, "wrong length")])
    sig_structure = cbor2.dumps(["Signature1", doc.protected, b"", doc.payload])
    key = leaf.public_key
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        r = int.from_bytes(doc.signature[:48], "big")
        s = int.from_bytes(doc.signature[48:], "big")
        key.verify(encode_dss_signature(r, s), sig_structure, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        checks.append(Check("nitro.signature", False, "COSE_Sign1 signature does not verify with the leaf"))
        raise VerificationError("Nitro document signature does not verify", reason="signature", checks=checks)
    checks.append(Check("nitro.signature", True, "COSE_Sign1 ES384 by the enclave certificate"))
    debug = all(not any(doc.pcrs.get(i, b"")) for i in (0, 1, 2))
    claims = Claims(
        tee=Tee.NITRO,
        measurements={f"pcr{i}": v.hex() for i, v in sorted(doc.pcrs.items())},
        tcb_status=TcbStatus.UNKNOWN,
        debug=debug,
        report_data=doc.user_data or b"",
        platform={"module_id": doc.module_id, "timestamp": doc.timestamp.isoformat(), "digest": doc.digest,
                  "anchor": anchor.subject, "test_anchor": any(a.same_as(anchor) for a in extra)
                  and not any(b.same_as(anchor) for b in builtin)},
        collateral_expiry=min(c.not_after for c in path),
        extra={"public_key": doc.public_key, "nonce": doc.nonce},
    )
    return claims, checks, ["AWS Nitro has no revocation lists: revocation not checked"]
