"""The vocabulary every attestation stage shares: TEE kinds, TCB statuses, revocation coverage, checks,
errors, collateral as supplied, and the verdict. Typed claims are in :mod:`.claims`, anchors in :mod:`.anchors`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Tee(str, enum.Enum):
    """The kind of trusted execution environment that produced the evidence."""

    SNP = "sev-snp"
    TDX = "tdx"
    SGX = "sgx"
    NITRO = "nitro"
    NVIDIA = "nvidia"
    KVM = "kvm"  # no hardware: nil and kvm keeps (never trusted by default)


class TcbStatus(str, enum.Enum):
    """Intel's TCB status vocabulary, plus what we say when there is no status to give.

    ``UNKNOWN``: the TEE has a TCB-status source (Intel TCB info) but it was not supplied.
    ``NOT_EVALUATED``: the vendor publishes no TCB status (AMD, AWS Nitro, NVIDIA) and the policy
    gives no reference to evaluate against (for SEV-SNP: no ``min_tcb`` for the product)."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"
    NOT_SUPPORTED = "TcbNotSupported"  # no TCB level matches the platform
    UNKNOWN = "Unknown"  # no TCB collateral was supplied
    NOT_EVALUATED = "NotEvaluated"  # no status source and no policy reference


class Revocation(str, enum.Enum):
    """How far revocation was checked along the certificate chains that vouch for the evidence."""

    FULL = "full"  # every link the vendor covers by a CRL was checked against a current CRL
    PARTIAL = "partial"  # some of those links were checked, others had no CRL
    NOT_CHECKED = "not-checked"  # the vendor publishes CRLs but none was supplied
    NOT_AVAILABLE = "not-available"  # the vendor publishes no revocation source usable offline


@dataclass(slots=True)  # (not frozen: thousands are made per second, and nothing mutates them)
class Check:
    """One named step of verification or appraisal, with its outcome and a human-readable detail."""

    name: str
    passed: bool
    detail: str = ""
    expected: str | None = None
    actual: str | None = None
    reason: str | None = None  # for a failed policy check: the verdict's reason token it stands for

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "passed": self.passed, "detail": self.detail}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.actual is not None:
            out["actual"] = self.actual
        return out


class AttestationError(Exception):
    """Base of every attestation error. ``reason`` is a short stable token (see corpora cases.tsv)."""

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None, checks: list[Check] | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.checks = list(checks or [])
        self.warnings: list[str] = []


class MalformedEvidence(AttestationError):
    """Bytes that do not parse as the claimed format (truncated, wrong version, bad lengths…)."""

    reason = "parse"


class VerificationError(AttestationError):
    """Evidence is not genuine or not current: signature, chain, root, revoked, expired.

    ``reason`` is one of: ``signature``, ``chain``, ``untrusted-root``, ``revoked``, ``expired``,
    ``not-yet-valid``, ``collateral`` (mismatched or unusable collateral), ``stale-collateral`` (older than
    what the verifier already holds), ``binding``.
    """

    reason = "signature"


class PolicyRejection(AttestationError):
    """Evidence is genuine but the policy (or TCB status) refuses it; ``checks`` lists every failed rule."""

    reason = "policy"


@dataclass
class CollateralSet:
    """Everything a caller supplied beside the evidence, classified by content, not by file name.

    Roots found here are *never* trust anchors; they only help build chains. Intel JSON collateral
    (TCB info, QE identity, combined collateral) is kept as raw bytes because its signatures are
    computed over the exact bytes of a JSON member.
    """

    certificates: list[Any] = field(default_factory=list)  # DER bytes (or Cert / cryptography certificates)
    crls: list[Any] = field(default_factory=list)  # DER bytes (or Crl / cryptography CRLs)
    json_documents: list[tuple[str, bytes]] = field(default_factory=list)  # (source name, raw bytes)
    sources: list[str] = field(default_factory=list)  # where each item came from, for messages
    # more DER, read exactly like the lists above (kept for callers that sort items this way)
    raw_certificates: list[bytes] = field(default_factory=list)
    raw_crls: list[bytes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. files in a directory that were skipped

    def merge(self, other: CollateralSet) -> CollateralSet:
        """A new set holding the items of both (no de-duplication beyond identity of sources)."""
        return CollateralSet(
            certificates=[*self.certificates, *other.certificates],
            crls=[*self.crls, *other.crls],
            json_documents=[*self.json_documents, *other.json_documents],
            sources=[*self.sources, *other.sources],
            raw_certificates=[*self.raw_certificates, *other.raw_certificates],
            raw_crls=[*self.raw_crls, *other.raw_crls],
            warnings=[*self.warnings, *other.warnings],
        )


@dataclass
class Verdict:
    """The outcome of verification (and, when a policy was given, appraisal)."""

    claims: Any  # enarx.attestation.claims.Claims, or None when verification failed
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: str = "trusted"  # trusted | rejected | failed
    reason: str = "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "claims": self.claims.to_json() if self.claims else None,
            "checks": [c.to_json() for c in self.checks],
            "warnings": list(self.warnings),
        }
