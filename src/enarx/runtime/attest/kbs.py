"""The keep's evidence in the key broker's (Trustee's) ``tee-evidence`` shape, for push and for the broker.

The evidence sources make the Steward's CSR extension (:mod:`enarx.attestation.envelope`); this adapter
decodes that envelope and re-wraps the same report or quote, with its collateral, as Trustee's per-TEE JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from enarx.errors import KeepError
from enarx.runtime.attest.evidence import EvidenceSource


def tee_evidence_for(source: EvidenceSource) -> tuple[str, Callable[[bytes], dict[str, Any]]]:
    """(the KBS TEE name, ``report_data -> tee-evidence``) of an evidence source."""
    from enarx.kbs.evidence import KBS_TEE_NAMES, build_tee_evidence

    name = KBS_TEE_NAMES.get(source.tee)
    if name is None:
        raise KeepError(f"this keep has no hardware evidence to offer ({source.technology}): receiving an encrypted "
                        "package needs an SEV-SNP or TDX keep (or --simulate-tee for testing)")

    def evidence_for(report_data: bytes) -> dict[str, Any]:
        from enarx.steward.csr import CsrError, decode_evidence

        oid, value = source.extension(report_data)
        try:
            decoded = decode_evidence(oid, value, False)
        except CsrError as exc:
            raise KeepError(f"the keep's own evidence does not decode: {exc}") from None
        return build_tee_evidence(decoded.tee, decoded.evidence, decoded.collateral)

    return name, evidence_for
