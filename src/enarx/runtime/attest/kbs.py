"""The keep's evidence in the key broker's (Trustee's) ``tee-evidence`` shape, for push and for the broker.

The evidence sources make the Steward's CSR extension (:mod:`enarx.attestation.envelope`); this adapter cuts
the same report or quote and its collateral out of that envelope (as DER and JSON, parsing nothing else: the
verifier parses) and re-wraps them as Trustee's per-TEE JSON, with Enarx's ``enarx-collateral`` extension.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from enarx.errors import KeepError
from enarx.runtime.attest.evidence import EvidenceSource

_KBS_NAMES = {"sev-snp": "snp", "tdx": "tdx", "sgx": "sgx"}


def tee_evidence_for(source: EvidenceSource) -> tuple[str, Callable[[bytes], dict[str, Any]]]:
    """(the KBS TEE name, ``report_data -> tee-evidence``) of an evidence source."""
    name = _KBS_NAMES.get(source.technology)
    if name is None:
        raise KeepError(f"this keep has no hardware evidence to offer ({source.technology}): receiving an encrypted "
                        "package needs an SEV-SNP or TDX keep (or --simulate-tee for testing)")

    def evidence_for(report_data: bytes) -> dict[str, Any]:
        _oid, value = source.extension(report_data)
        try:
            return _snp(value) if name == "snp" else _intel(value, tdx=name == "tdx")
        except Exception as exc:  # noqa: BLE001 - asn1crypto's lazy parsing raises ValueError, TypeError, …
            raise KeepError(f"the keep's own {source.technology} evidence does not decode: {exc}") from None

    return name, evidence_for


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _crl_ders(crl_list: Any) -> list[bytes]:
    return [entry["crl"].dump() for entry in crl_list["crls"]]


def _snp(value: bytes) -> dict[str, Any]:
    from enarx.attestation.envelope import SnpEvidence

    parsed = SnpEvidence.load(value, strict=True)
    vcek = parsed["vcek"]
    return {"attestation_report": _b64(parsed["report"].native),
            "cert_chain": [{"cert_type": "VCEK", "data": _b64(vcek["vcek"].dump())}],
            "enarx-collateral": [_b64(crl) for crl in _crl_ders(vcek["crls"])]}


def _intel(value: bytes, *, tdx: bool) -> dict[str, Any]:
    from enarx.attestation.envelope import SgxEvidence, TdxEvidence

    parsed = (TdxEvidence if tdx else SgxEvidence).load(value, strict=True)
    items = [c.dump() for c in parsed["tcb"]["certs"]] + _crl_ders(parsed["crls"]) + [parsed["tcb"]["report"].native]
    if tdx and parsed["qe_identity"].native is not None:
        items.append(parsed["qe_identity"].native)
    items = [item for item in items if item]  # a TDX keep sends its quote alone: the verifier holds collateral
    doc: dict[str, Any] = {"quote": _b64(parsed["quote"].native), "enarx-collateral": [_b64(i) for i in items]}
    if tdx:
        doc["cc_eventlog"] = None
    return doc
