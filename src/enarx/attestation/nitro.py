"""AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) with a certificate chain to the AWS root.

Layout: ``COSE_Sign1 = [protected: bstr({1: -35}), unprotected: map, payload: bstr, signature: bstr(96)]``
(optionally CBOR tag 18). The payload is a CBOR map with ``module_id``, ``digest`` ("SHA384"),
``timestamp`` (ms since the epoch), ``pcrs`` ({index: 32/48/64-byte digest}), ``certificate`` (DER leaf),
``cabundle`` ([root, …, intermediate], DER) and optional ``public_key``, ``user_data``, ``nonce``.
The signature (raw r‖s) is over ``Sig_structure = ["Signature1", protected, h'', payload]``.

AWS publishes no CRLs and no TCB status for Nitro: claims say revocation ``not-available`` and TCB status
``NotEvaluated``, and policy decides. A debug-mode enclave reports PCR0–2 as all zeros, which is what
``debug`` means here. Leaf certificates live three hours, so verify at the document's timestamp to check
recorded documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2

from enarx.attestation import crypto
from enarx.attestation.chain import CrlScope
from enarx.attestation.claims import NitroClaims, Provenance
from enarx.attestation.context import Context
from enarx.attestation.model import MalformedEvidence, TcbStatus
from enarx.attestation.pki import CertificateFormatError

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


def verify(data: bytes, ctx: Context) -> NitroClaims:
    doc = parse(data)
    trail = ctx.trail
    trail.ok("nitro.format", f"COSE_Sign1 ES384, module {doc.module_id}")
    try:
        leaf = ctx.cert(doc.certificate)
        bundle = [ctx.cert(c) for c in doc.cabundle]
    except CertificateFormatError as exc:
        raise MalformedEvidence(f"Nitro document: {exc}") from None
    result = ctx.chain(leaf, CrlScope.NONE, name="nitro.chain", pool=ctx.pool(*bundle))
    sig_structure = cbor2.dumps(["Signature1", doc.protected, b"", doc.payload])
    if len(doc.signature) != 96 or not crypto.verify_raw_ecdsa(leaf.public_key, crypto.ECDSA_SHA384, sig_structure,
                                                                  doc.signature):
        raise trail.fail("nitro.signature", "COSE_Sign1 signature does not verify with the enclave certificate",
                         "signature")
    trail.ok("nitro.signature", "COSE_Sign1 ES384 by the enclave certificate")
    trail.warn("revocation not available: AWS publishes no revocation list for Nitro Enclaves certificates")
    return NitroClaims(
        report_data=doc.user_data or b"", debug=all(not any(doc.pcrs.get(i, b"")) for i in (0, 1, 2)),
        tcb_status=TcbStatus.NOT_EVALUATED,
        provenance=Provenance(result.anchor.cert.subject, result.anchor.cert.sha256, result.anchor.test,
                              result.revocation, collateral_expiry=result.expiry),
        pcrs=dict(doc.pcrs), module_id=doc.module_id, timestamp=doc.timestamp, digest=doc.digest,
        public_key=doc.public_key, nonce=doc.nonce,
    )
