"""Types shared by every attestation stage: the normalized claim set, checks and errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
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
    """Intel's TCB status vocabulary; SNP reports map onto UP_TO_DATE / OUT_OF_DATE."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"
    NOT_SUPPORTED = "TcbNotSupported"  # no TCB level matches the platform
    UNKNOWN = "Unknown"  # no TCB collateral was supplied


@dataclass(frozen=True)
class Check:
    """One named step of verification or appraisal, with its outcome and a human-readable detail."""

    name: str
    passed: bool
    detail: str = ""
    expected: str | None = None
    actual: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "passed": self.passed, "detail": self.detail}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.actual is not None:
            out["actual"] = self.actual
        return out


@dataclass
class Claims:
    """The normalized claim set: the same shape whatever TEE produced the evidence.

    ``measurements`` and ``signer`` map names (``mrenclave``, ``mrtd``, ``rtmr0``, ``measurement``,
    ``host_data``, ``mrsigner``, ``id_key_digest``, ``author_key_digest`` …) to lowercase hex.
    ``svns`` maps names to integers (``isv_svn``, ``guest_svn``, ``pce_svn``, ``bootloader`` …).
    """

    tee: Tee
    measurements: dict[str, str] = field(default_factory=dict)
    signer: dict[str, str] = field(default_factory=dict)
    svns: dict[str, int] = field(default_factory=dict)
    tcb_status: TcbStatus = TcbStatus.UNKNOWN
    advisory_ids: list[str] = field(default_factory=list)
    debug: bool = False
    report_data: bytes = b""
    platform: dict[str, Any] = field(default_factory=dict)  # chip id, fmspc, product, VMPL, policy bits…
    collateral_expiry: datetime | None = None  # earliest notAfter/nextUpdate among everything used
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "tee": self.tee.value,
            "measurements": dict(self.measurements),
            "signer": dict(self.signer),
            "svns": dict(self.svns),
            "tcb_status": self.tcb_status.value,
            "advisory_ids": list(self.advisory_ids),
            "debug": self.debug,
            "report_data": self.report_data.hex(),
            "platform": _jsonable(self.platform),
            "collateral_expiry": self.collateral_expiry.isoformat() if self.collateral_expiry else None,
            "extra": _jsonable(self.extra),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class AttestationError(Exception):
    """Base of every attestation error. ``reason`` is a short stable token (see corpora cases.tsv)."""

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None, checks: list[Check] | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.checks = list(checks or [])


class MalformedEvidence(AttestationError):
    """Bytes that do not parse as the claimed format (truncated, wrong version, bad lengths…)."""

    reason = "parse"


class VerificationError(AttestationError):
    """Evidence is not genuine or not current: signature, chain, root, revoked, expired.

    ``reason`` is one of: ``signature``, ``chain``, ``untrusted-root``, ``revoked``, ``expired``,
    ``collateral`` (missing/mismatched collateral), ``binding``.
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

    certificates: list[Any] = field(default_factory=list)  # cryptography.x509.Certificate
    crls: list[Any] = field(default_factory=list)  # cryptography.x509.CertificateRevocationList
    json_documents: list[tuple[str, bytes]] = field(default_factory=list)  # (source name, raw bytes)
    sources: list[str] = field(default_factory=list)  # where each item came from, for messages
    # DER of certificates / CRLs that ``cryptography`` refuses to load (e.g. a future release rejecting
    # AMD's serial-0 VCEKs); verifiers that parse DER themselves read these as well as the lists above.
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
class TrustAnchors:
    """Root certificates accepted as the end of a chain: the built-in vendor roots plus explicit extras.

    ``extra`` holds roots the user named with ``--trust-anchor``; any verdict that relied on one
    carries a warning, because such roots (test PKIs, the simulator) prove nothing about hardware.
    """

    builtin: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)


@dataclass
class Verdict:
    """The outcome of verification (and, when a policy was given, appraisal)."""

    claims: Claims | None
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
