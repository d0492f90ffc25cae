"""Typed claims per TEE: what verified evidence says, field by field.

Every format verifier returns one of :class:`SnpClaims`, :class:`SgxClaims`, :class:`TdxClaims`,
:class:`NitroClaims` or :class:`NvidiaClaims`, sharing :class:`Claims`: report_data, the debug bit, the TCB
status and :class:`Provenance` (which anchor, whether it was a test anchor, how far revocation was checked,
which collateral was present, when it expires).

Policy reads *facts* by name (:meth:`Claims.fact`): each class declares the names it has (``FACTS``), a
fact that the evidence does not carry is ``None``, and a rule on a missing fact fails. The names are the
ones policies have always used (``measurement``, ``mrenclave``, ``mrtd``, ``rtmr0``, ``mrsigner``,
``isv_svn``, ``microcode``, ``pcr0``, ``measurement3``…); :func:`known_fact` tells a policy loader whether a
name exists for any TEE, so that a typo is a load error rather than a rule that never matches.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from enarx.attestation.model import Revocation, TcbStatus, Tee
from enarx.attestation.snp.abi import POLICY_BITS, TcbVersion

DIGEST, NUMBER = "digest", "number"


@dataclass(frozen=True)
class Provenance:
    """How the evidence was shown genuine: the facts policy needs about trust and collateral."""

    anchor: str  # subject of the anchor the chain ended at
    anchor_sha256: str
    test_anchor: bool  # an explicitly configured test anchor, not a vendor root
    revocation: Revocation
    unchecked: tuple[str, ...] = ()  # chain links whose CRL was not available
    collateral_expiry: datetime | None = None  # earliest notAfter / nextUpdate relied on
    tcb_info: bool | None = None  # Intel TCB info present (None: not a collateral item of this TEE)
    qe_identity: bool | None = None  # Intel QE identity present and checked

    def to_json(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor, "anchor_sha256": self.anchor_sha256, "test_anchor": self.test_anchor,
            "revocation": self.revocation.value, "revocation_unchecked": list(self.unchecked),
            "collateral_expiry": self.collateral_expiry.isoformat() if self.collateral_expiry else None,
            "tcb_info": self.tcb_info, "qe_identity": self.qe_identity,
        }


@dataclass(frozen=True)
class Claims:
    """What every TEE's verified evidence says."""

    TEE: ClassVar[Tee]
    MEASUREMENTS: ClassVar[tuple[str, ...]] = ()
    SIGNERS: ClassVar[tuple[str, ...]] = ()
    SVNS: ClassVar[tuple[str, ...]] = ()
    PATTERNS: ClassVar[tuple[tuple[re.Pattern[str], str], ...]] = ()  # dynamic names: (regex, kind)

    report_data: bytes
    debug: bool
    provenance: Provenance
    tcb_status: TcbStatus = TcbStatus.NOT_EVALUATED
    advisory_ids: tuple[str, ...] = ()

    @property
    def tee(self) -> Tee:
        return self.TEE

    @property
    def collateral_expiry(self) -> datetime | None:
        return self.provenance.collateral_expiry

    @property
    def test_anchor(self) -> bool:
        return self.provenance.test_anchor

    # -- facts --------------------------------------------------------------------------------------
    @classmethod
    def fact_kind(cls, name: str) -> str | None:
        """``digest`` or ``number`` when ``name`` is a fact of this TEE, else ``None``."""
        if name in cls.MEASUREMENTS or name in cls.SIGNERS:
            return DIGEST
        if name in cls.SVNS:
            return NUMBER
        return next((kind for pattern, kind in cls.PATTERNS if pattern.fullmatch(name)), None)

    def fact(self, name: str) -> str | int | None:
        """The value of a fact (lowercase hex for digests), ``None`` when this evidence does not carry it."""
        if self.fact_kind(name) is None:
            return None
        value = self._fact(name)
        if isinstance(value, bytes):
            return value.hex()
        return value

    def _fact(self, name: str) -> Any:
        return getattr(self, name, None)

    def _group(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {n: v for n in names if (v := self.fact(n)) is not None}

    @property
    def measurements(self) -> dict[str, str]:
        return self._group(self.MEASUREMENTS)

    @property
    def signer(self) -> dict[str, str]:
        return self._group(self.SIGNERS)

    @property
    def svns(self) -> dict[str, int]:
        return self._group(self.SVNS)

    @property
    def platform(self) -> dict[str, Any]:
        """Everything else, for people and JSON (policy never reads this)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        return {
            "tee": self.tee.value,
            "measurements": self.measurements,
            "signer": self.signer,
            "svns": self.svns,
            "tcb_status": self.tcb_status.value,
            "advisory_ids": list(self.advisory_ids),
            "debug": self.debug,
            "report_data": self.report_data.hex(),
            "platform": jsonable(self.platform),
            "collateral_expiry": self.collateral_expiry.isoformat() if self.collateral_expiry else None,
            "trust": self.provenance.to_json(),
        }


# --- SEV-SNP -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnpClaims(Claims):
    TEE: ClassVar[Tee] = Tee.SNP
    MEASUREMENTS: ClassVar[tuple[str, ...]] = ("measurement", "host_data", "family_id", "image_id")
    SIGNERS: ClassVar[tuple[str, ...]] = ("id_key_digest", "author_key_digest")
    SVNS: ClassVar[tuple[str, ...]] = ("guest_svn", "bootloader", "tee", "snp", "microcode", "fmc")

    measurement: bytes = b""
    host_data: bytes = b""
    family_id: bytes = b""
    image_id: bytes = b""
    id_key_digest: bytes = b""
    author_key_digest: bytes | None = None  # only when AUTHOR_KEY_EN
    guest_svn: int = 0
    vmpl: int = 0
    policy: int = 0
    abi: tuple[int, int] = (0, 0)
    product: str | None = None  # Milan, Genoa, Turin; None when nothing says
    chip_id: bytes = b""
    signing_key: str = "vcek"
    report_version: int = 0
    reported_tcb: TcbVersion = field(default_factory=TcbVersion)
    current_tcb: TcbVersion = field(default_factory=TcbVersion)
    committed_tcb: TcbVersion = field(default_factory=TcbVersion)
    launch_tcb: TcbVersion = field(default_factory=TcbVersion)
    firmware: tuple[int, int, int] = (0, 0, 0)
    platform_info: int = 0
    report_id: bytes = b""
    csp_id: str | None = None  # VLEK: the cloud provider
    endorsement_key: str = ""

    def _fact(self, name: str) -> Any:
        if name in ("bootloader", "tee", "snp", "microcode", "fmc"):
            return getattr(self.reported_tcb, name)
        return getattr(self, name)

    def policy_flag(self, name: str) -> bool:
        return bool(self.policy & POLICY_BITS[name])

    @property
    def platform(self) -> dict[str, Any]:
        return {
            "product": self.product, "chip_id": self.chip_id, "vmpl": self.vmpl, "policy": self.policy,
            "policy_flags": {n: self.policy_flag(n) for n in POLICY_BITS},
            "abi": "{}.{}".format(*self.abi), "platform_info": self.platform_info, "signing_key": self.signing_key,
            "report_version": self.report_version, "reported_tcb": self.reported_tcb.components(),
            "current_tcb": self.current_tcb.components(), "committed_tcb": self.committed_tcb.components(),
            "launch_tcb": self.launch_tcb.components(), "firmware": "{}.{}.{}".format(*self.firmware),
            "report_id": self.report_id, "endorsement_key": self.endorsement_key, "csp_id": self.csp_id,
        }


# --- Intel ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntelClaims(Claims):
    """What SGX and TDX quotes share: the platform (PCK certificate) and the quoting enclave."""

    SVNS: ClassVar[tuple[str, ...]] = ("pce_svn", "qe_svn")

    fmspc: bytes = b""
    pce_id: bytes = b""
    pck_tcb_components: tuple[int, ...] = ()
    pck_pcesvn: int = 0
    pck_cpusvn: bytes = b""
    ppid: bytes | None = None
    quote_version: int = 0
    qe_vendor_id: bytes = b""
    pce_svn: int = 0
    qe_svn: int = 0
    qe_mrenclave: bytes = b""
    qe_mrsigner: bytes = b""
    qe_isv_prodid: int = 0
    qe_isv_svn: int = 0
    qe_tcb_status: TcbStatus | None = None  # from the QE identity, when one was checked
    tcb_date: datetime | None = None
    tcb_evaluation_data_number: int | None = None

    def _platform(self) -> dict[str, Any]:
        return {
            "fmspc": self.fmspc, "pce_id": self.pce_id, "tcb_components": list(self.pck_tcb_components),
            "pck_pcesvn": self.pck_pcesvn, "cpusvn": self.pck_cpusvn, "ppid": self.ppid,
            "quote_version": self.quote_version, "qe_vendor_id": self.qe_vendor_id,
            "qe": {"mrenclave": self.qe_mrenclave, "mrsigner": self.qe_mrsigner, "isv_prodid": self.qe_isv_prodid,
                   "isv_svn": self.qe_isv_svn, "tcb_status": self.qe_tcb_status},
            "tcb_date": self.tcb_date, "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
        }


@dataclass(frozen=True)
class SgxClaims(IntelClaims):
    TEE: ClassVar[Tee] = Tee.SGX
    MEASUREMENTS: ClassVar[tuple[str, ...]] = ("mrenclave",)
    SIGNERS: ClassVar[tuple[str, ...]] = ("mrsigner",)
    SVNS: ClassVar[tuple[str, ...]] = ("pce_svn", "qe_svn", "isv_svn", "isv_prodid")

    mrenclave: bytes = b""
    mrsigner: bytes = b""
    isv_prodid: int = 0
    isv_svn: int = 0
    attributes: bytes = b""
    misc_select: int = 0
    report_cpusvn: bytes = b""

    @property
    def platform(self) -> dict[str, Any]:
        return {**self._platform(), "attributes": self.attributes, "misc_select": self.misc_select,
                "cpusvn_report": self.report_cpusvn}


@dataclass(frozen=True)
class TdxClaims(IntelClaims):
    TEE: ClassVar[Tee] = Tee.TDX
    MEASUREMENTS: ClassVar[tuple[str, ...]] = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner",
                                               "mrownerconfig", "mrseam", "mrservicetd")
    SIGNERS: ClassVar[tuple[str, ...]] = ("mrsignerseam",)
    SVNS: ClassVar[tuple[str, ...]] = ("pce_svn", "qe_svn", "tdx_module_svn", "tdx_module_version")

    mrtd: bytes = b""
    rtmrs: tuple[bytes, ...] = ()
    mrconfigid: bytes = b""
    mrowner: bytes = b""
    mrownerconfig: bytes = b""
    mrseam: bytes = b""
    mrsignerseam: bytes = b""
    mrservicetd: bytes | None = None  # TD 1.5 only
    td_attributes: bytes = b""
    xfam: bytes = b""
    seam_attributes: bytes = b""
    tee_tcb_svn: bytes = b""
    tee_tcb_svn2: bytes | None = None
    td_version: str = "1.0"
    tdx_module_tcb_status: TcbStatus | None = None

    def _fact(self, name: str) -> Any:
        if name.startswith("rtmr"):
            index = int(name[4:])
            return self.rtmrs[index] if index < len(self.rtmrs) else None
        if name == "tdx_module_svn":
            return self.tee_tcb_svn[0] if self.tee_tcb_svn else None
        if name == "tdx_module_version":
            return self.tee_tcb_svn[1] if len(self.tee_tcb_svn) > 1 else None
        return getattr(self, name)

    @property
    def platform(self) -> dict[str, Any]:
        return {**self._platform(), "tee_tcb_svn": self.tee_tcb_svn, "tee_tcb_svn2": self.tee_tcb_svn2,
                "td_attributes": self.td_attributes, "xfam": self.xfam, "seam_attributes": self.seam_attributes,
                "td_version": self.td_version, "tdx_module_tcb_status": self.tdx_module_tcb_status}


# --- AWS Nitro, NVIDIA -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NitroClaims(Claims):
    TEE: ClassVar[Tee] = Tee.NITRO
    PATTERNS: ClassVar[tuple[tuple[re.Pattern[str], str], ...]] = ((re.compile(r"pcr([0-9]|[12][0-9]|3[01])"), DIGEST),)

    pcrs: dict[int, bytes] = field(default_factory=dict)
    module_id: str = ""
    timestamp: datetime | None = None
    digest: str = ""
    public_key: bytes | None = None
    nonce: bytes | None = None

    def _fact(self, name: str) -> Any:
        return self.pcrs.get(int(name[3:]))

    @property
    def measurements(self) -> dict[str, str]:
        return {f"pcr{i}": v.hex() for i, v in sorted(self.pcrs.items())}

    @property
    def platform(self) -> dict[str, Any]:
        return {"module_id": self.module_id, "timestamp": self.timestamp, "digest": self.digest,
                "public_key": self.public_key, "nonce": self.nonce}


@dataclass(frozen=True)
class NvidiaClaims(Claims):
    TEE: ClassVar[Tee] = Tee.NVIDIA
    PATTERNS: ClassVar[tuple[tuple[re.Pattern[str], str], ...]] = ((re.compile(r"measurement([0-9]{1,3})"), DIGEST),)

    blocks: dict[int, bytes] = field(default_factory=dict)
    device: str = ""
    slot_id: int = 0
    response_nonce: bytes = b""
    opaque: bytes = b""

    def _fact(self, name: str) -> Any:
        return self.blocks.get(int(name[len("measurement"):]))

    @property
    def measurements(self) -> dict[str, str]:
        return {f"measurement{i}": v.hex() for i, v in sorted(self.blocks.items())}

    @property
    def platform(self) -> dict[str, Any]:
        return {"device": self.device, "slot_id": self.slot_id, "response_nonce": self.response_nonce,
                "opaque": self.opaque}


CLAIM_TYPES: dict[Tee, type[Claims]] = {c.TEE: c for c in (SnpClaims, SgxClaims, TdxClaims, NitroClaims, NvidiaClaims)}


def known_fact(name: str) -> str | None:
    """The kind of fact ``name`` is for some TEE (``digest`` / ``number``), ``None`` when no TEE has it."""
    return next((kind for c in CLAIM_TYPES.values() if (kind := c.fact_kind(name))), None)


def tees_with_fact(name: str) -> list[Tee]:
    return [tee for tee, c in CLAIM_TYPES.items() if c.fact_kind(name)]


def claims_from_json(doc: dict[str, Any]) -> Claims:
    """Typed claims back from :meth:`Claims.to_json` (e.g. out of a token a broker signed), with every fact
    policy can read: measurements, signers, SVNs, debug, TCB status, provenance and the SEV-SNP guest policy.
    Raises ``KeyError``/``ValueError``/``TypeError`` for a document that is not such JSON, or that lacks a
    fact a rule reads as a plain value (``debug``; SEV-SNP's ``platform.vmpl`` and ``platform.policy``): read
    as a default, a fact nobody stated would pass its rule."""
    tee = Tee(doc["tee"])
    if not isinstance(doc.get("debug"), bool):
        raise ValueError("the claims document states no debug flag")
    cls = CLAIM_TYPES[tee]
    digests = {**doc.get("measurements", {}), **doc.get("signer", {})}
    svns = dict(doc.get("svns", {}))
    platform = dict(doc.get("platform", {}))
    trust = dict(doc.get("trust") or {})  # absent: nothing is known about revocation (a policy refuses)
    expiry = trust.get("collateral_expiry") or doc.get("collateral_expiry")
    provenance = Provenance(
        anchor=str(trust.get("anchor", "")), anchor_sha256=str(trust.get("anchor_sha256", "")),
        test_anchor=bool(trust.get("test_anchor", doc.get("test_anchor", False))),
        revocation=Revocation(trust.get("revocation", Revocation.NOT_CHECKED.value)),
        unchecked=tuple(trust.get("revocation_unchecked", ())),
        collateral_expiry=datetime.fromisoformat(expiry) if expiry else None,
        tcb_info=trust.get("tcb_info"), qe_identity=trust.get("qe_identity"))
    kw: dict[str, Any] = {
        "report_data": bytes.fromhex(doc.get("report_data", "")), "debug": doc["debug"],
        "provenance": provenance, "tcb_status": TcbStatus(doc.get("tcb_status", TcbStatus.UNKNOWN.value)),
        "advisory_ids": tuple(doc.get("advisory_ids", ())),
    }
    names = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
    for name, value in digests.items():
        if name in names:
            kw[name] = bytes.fromhex(value)
    for name, value in svns.items():
        if name in names:
            kw[name] = int(value)
    if cls is SnpClaims:
        if not all(isinstance(platform.get(k), int) and not isinstance(platform.get(k), bool)
                   for k in ("vmpl", "policy")):
            raise ValueError("the SEV-SNP claims document states no VMPL or guest policy (platform.vmpl, .policy)")
        tcb = {k: int(svns[k]) for k in ("bootloader", "tee", "snp", "microcode", "fmc") if k in svns}
        kw["reported_tcb"] = TcbVersion(**tcb)
        for key in ("vmpl", "policy", "product", "signing_key", "csp_id"):
            if key in platform:
                kw[key] = platform[key]
        if "abi" in platform:
            kw["abi"] = tuple(int(x) for x in str(platform["abi"]).split("."))
    elif cls is TdxClaims:
        kw["rtmrs"] = tuple(bytes.fromhex(digests[f"rtmr{i}"]) for i in range(4) if f"rtmr{i}" in digests)
        if platform.get("tee_tcb_svn"):
            kw["tee_tcb_svn"] = bytes.fromhex(platform["tee_tcb_svn"])
    elif cls is NitroClaims:
        kw["pcrs"] = {int(k[3:]): bytes.fromhex(v) for k, v in digests.items() if k.startswith("pcr")}
    elif cls is NvidiaClaims:
        kw["blocks"] = {int(k[len("measurement"):]): bytes.fromhex(v) for k, v in digests.items()
                        if k.startswith("measurement")}
    return cls(**kw)


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value
