"""Trustee's ``tee-evidence`` JSON per TEE, ``runtime-data``, and the report_data that binds them.

Shapes accepted (those of Trustee's attesters, so its clients interoperate):

* ``snp``: ``{"attestation_report": R, "cert_chain": [{"cert_type": "VCEK"|"VLEK"|"ASK"|"ASVK"|"ARK",
  "data": D}] | null}`` — ``R`` the raw 1184-byte report and ``D`` a DER certificate, each as base64 or as
  a JSON array of byte values (serde's form of a byte vector);
* ``tdx``: ``{"quote": base64, "cc_eventlog": base64 | null}``;
* ``sgx``: ``{"quote": base64}``.

``tee-evidence`` may also arrive as a JSON *string* holding that object (Trustee's TDX attester sends
one), or as Trustee's (protocol 0.4) composite ``{"primary_evidence": …, "additional_evidence": …}``
(one level of wrapping only). An optional extension member ``"enarx-collateral"`` (a list of base64
certificates, CRLs or Intel JSON collateral) helps build chains; it is untrusted like any collateral —
everything in it is signed by the vendor or ignored.

**Binding.** ``runtime-data`` is a JSON object holding at least ``nonce`` (the challenge) and
``tee-pubkey`` (the keep's ephemeral JWK). report_data must equal ``SHA-384(canonical JSON of
runtime-data)`` followed by 16 zero bytes, canonical JSON being sorted keys, no whitespace, UTF-8 — what
Trustee's clients hash (serde_json of a ``Value``), for SEV-SNP and TDX alike. With composite evidence the
hashed object is runtime-data plus ``"additional-evidence"`` (the composite's ``additional_evidence``
string), as Trustee 0.4 clients hash it; additional (device) evidence itself is not verified here, so
only an empty one is accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from enarx.attestation.model import AttestationError, CollateralSet, Tee

TEES = {"snp": Tee.SNP, "tdx": Tee.TDX, "sgx": Tee.SGX}
KBS_TEE_NAMES = {tee: name for name, tee in TEES.items()}
FORMATS = {Tee.SNP: "snp", Tee.TDX: "tdx", Tee.SGX: "sgx"}
SNP_REPORT_SIZE = 1184
MAX_ITEM = 1 << 20
MAX_COLLATERAL_ITEMS = 16
_VERSION = re.compile(r"0\.\d{1,3}\.\d{1,3}")
PACKAGE_MEMBER = "enarx-package"  # runtime-data member (Enarx's extension): the manifest digest the keep verified
ISOLATION_MEMBER = "enarx-isolation"  # runtime-data member: a keep without isolation says so (enarx.isolation)


class EvidenceError(Exception):
    """Malformed protocol JSON: the request is refused with 400 and this message."""


@dataclass
class TeeEvidence:
    tee: Tee
    evidence: bytes
    collateral: CollateralSet = field(default_factory=CollateralSet)
    additional: str | None = None  # the composite form's additional_evidence ("" when sent empty)

    def bound_object(self, runtime_data: dict[str, Any]) -> dict[str, Any]:
        """What the keep hashed into report_data for ``runtime_data`` (see the module's Binding)."""
        if self.additional is None:
            return runtime_data
        return {**runtime_data, "additional-evidence": self.additional}


def check_version(version: Any) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise EvidenceError(f"KBS protocol version {version!r} is not supported (this broker speaks 0.x)")
    return version


def tee_of(name: Any) -> Tee:
    if not isinstance(name, str) or name not in TEES:
        shown = repr(name)[:40] if isinstance(name, str) else f"of type {type(name).__name__}"
        raise EvidenceError(f"TEE {shown} is not supported here (supported: {', '.join(sorted(TEES))})")
    return TEES[name]


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; :class:`EvidenceError` for text that is not valid Unicode."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise EvidenceError("runtime-data holds text that is not valid Unicode (a lone surrogate)") from None
    except (TypeError, ValueError, RecursionError):
        raise EvidenceError("runtime-data cannot be serialized as JSON") from None


def report_data_for(runtime_data: dict[str, Any]) -> bytes:
    """The 64 bytes a keep must put in report_data for ``runtime_data``."""
    return hashlib.sha384(canonical(runtime_data)).digest().ljust(64, b"\x00")


def _bytes(value: Any, what: str, limit: int = MAX_ITEM) -> bytes:
    if isinstance(value, str):
        if len(value) > limit * 2:
            raise EvidenceError(f"{what} is too large")
        text = value.strip().replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise EvidenceError(f"{what} is not base64") from None
    if isinstance(value, list):
        if len(value) > limit or not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255
                                         for b in value):
            raise EvidenceError(f"{what} must be base64 or an array of byte values")
        return bytes(value)
    raise EvidenceError(f"{what} must be base64 or an array of byte values")


def _object(value: Any, what: str = "tee-evidence") -> dict[str, Any]:
    if isinstance(value, str):
        if len(value) > MAX_ITEM * 4:
            raise EvidenceError(f"{what} is too large")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise EvidenceError(f"{what} is a string that does not hold JSON") from None
    if not isinstance(value, dict):
        raise EvidenceError(f"{what} must be a JSON object")
    return value


def _unwrap(value: Any) -> tuple[dict[str, Any], str | None]:
    """The per-TEE object and, for Trustee's composite form, its ``additional_evidence``."""
    doc = _object(value)
    if "primary_evidence" not in doc:
        return doc, None
    additional = doc.get("additional_evidence", "")
    if not isinstance(additional, str):
        raise EvidenceError("additional_evidence must be a string")
    if additional:
        raise EvidenceError("additional (device) evidence is not supported by this broker: send it empty")
    primary = _object(doc["primary_evidence"], "primary_evidence")
    if "primary_evidence" in primary:
        raise EvidenceError("primary_evidence must be a per-TEE evidence object, not another wrapper")
    return primary, additional


def parse_tee_evidence(tee: Tee, value: Any) -> TeeEvidence:
    """The evidence bytes and collateral of a ``tee-evidence`` member; :class:`EvidenceError` if malformed."""
    doc, additional = _unwrap(value)
    out = CollateralSet()
    if tee is Tee.SNP:
        report = _bytes(doc.get("attestation_report"), "attestation_report")
        if len(report) != SNP_REPORT_SIZE:
            raise EvidenceError(f"attestation_report is {len(report)} bytes, not {SNP_REPORT_SIZE}")
        chain = doc.get("cert_chain") or []
        if not isinstance(chain, list) or len(chain) > MAX_COLLATERAL_ITEMS:
            raise EvidenceError("cert_chain must be a list of at most 16 {cert_type, data} entries")
        for i, entry in enumerate(chain):
            if not isinstance(entry, dict) or "data" not in entry:
                raise EvidenceError(f"cert_chain[{i}] must be {{cert_type, data}}")
            _add(out, _bytes(entry["data"], f"cert_chain[{i}].data"), f"cert_chain[{i}]")
        evidence = report
    else:
        evidence = _bytes(doc.get("quote"), "quote")
    extra = doc.get("enarx-collateral", [])
    if not isinstance(extra, list) or len(extra) > MAX_COLLATERAL_ITEMS:
        raise EvidenceError("enarx-collateral must be a list of at most 16 base64 items")
    for i, item in enumerate(extra):
        _add(out, _bytes(item, f"enarx-collateral[{i}]"), f"enarx-collateral[{i}]")
    return TeeEvidence(tee, evidence, out, additional)


def _add(out: CollateralSet, data: bytes, source: str) -> None:
    from enarx.attestation import collateral as coll  # the broker's side only: keeps never parse collateral

    try:
        ok = coll.add_bytes(out, data, source)
    except AttestationError as exc:
        raise EvidenceError(f"{source}: {exc}") from None
    if not ok:
        raise EvidenceError(f"{source} is not a certificate, CRL or Intel collateral document")


def build_tee_evidence(tee: Tee, evidence: bytes, collateral: CollateralSet | None = None) -> dict[str, Any]:
    """The keep's side: Trustee-shaped ``tee-evidence`` for raw evidence plus its collateral."""
    items = _collateral_items(collateral or CollateralSet())
    b64 = lambda data: base64.b64encode(data).decode()
    if tee is Tee.SNP:
        certs, rest = items[:len(collateral.certificates) if collateral else 0], items[len(collateral.certificates)
                                                                                        if collateral else 0:]
        return {"attestation_report": b64(evidence),
                "cert_chain": [{"cert_type": "VCEK", "data": b64(c)} for c in certs] or None,
                "enarx-collateral": [b64(i) for i in rest]}
    doc: dict[str, Any] = {"quote": b64(evidence), "enarx-collateral": [b64(i) for i in items]}
    if tee is Tee.TDX:
        doc["cc_eventlog"] = None
    return doc


def _collateral_items(collateral: CollateralSet) -> list[bytes]:
    from enarx.attestation.collateral import der_of  # collateral items are DER bytes or parsed objects

    items = [der_of(c) for c in collateral.certificates]
    items += [der_of(c) for c in collateral.crls]
    items += [raw for _name, raw in collateral.json_documents]
    items += list(collateral.raw_certificates) + list(collateral.raw_crls)
    return items[:MAX_COLLATERAL_ITEMS]
