"""SEV-SNP simulator: attestation reports plus VCEK/VLEK, ASK/ASVK, ARK and CRLs, signed by test keys.

The bytes are the real formats (a 1184-byte report signed with ECDSA P-384 over ``[0, 0x2A0)``; a VCEK
with serial 0, AMD's extensions and an RSASSA-PSS signature; KDS-style ``cert_chain`` PEM; ARK CRL), so
parsers, chain logic and policies are exercised end to end without hardware. Only the keys are fake:
the built-in AMD roots never verify these, and trusting them requires the returned anchor (CLI:
``--trust-anchor DIR/root.pem``), after which every verdict carries a warning.

Library use (e.g. the Steward's tests)::

    sim = simulate_snp(report_data=binding.report_data_for(key, Tee.SNP), measurement=m)
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from enarx.attestation import der, roots
from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.collateral import from_ders
from enarx.attestation.model import CollateralSet
from enarx.attestation.pki import Cert, pem
from enarx.attestation.simulate.pki import (
    RSA_PSS_SHA384,
    Name,
    crl_distribution_point,
    issue_certificate,
    issue_crl,
    rsa_key,
)
from enarx.attestation.snp import abi
from enarx.attestation.snp.abi import SnpReport, TcbVersion

PRODUCTS = {
    # product: (CPUID family, model, stepping, VCEK productName)
    "Milan": (0x19, 0x01, 0x01, "Milan-B0"),
    "Genoa": (0x19, 0x11, 0x01, "Genoa"),
    "Turin": (0x1A, 0x02, 0x01, "Turin"),
}
DEFAULT_TCB = {
    "Milan": TcbVersion(bootloader=4, tee=0, snp=24, microcode=219),
    "Genoa": TcbVersion(bootloader=10, tee=0, snp=23, microcode=84),
    "Turin": TcbVersion(bootloader=1, tee=0, snp=3, microcode=77, fmc=1),
}
DEFAULT_MEASUREMENT = hashlib.sha384(b"enarx simulated SEV-SNP launch measurement").digest()


def _amd_name(cn: str) -> Name:
    return [("OU", "Engineering"), ("C", "US"), ("L", "Santa Clara"), ("ST", "CA"),
            ("O", "Advanced Micro Devices"), ("CN", cn)]


def _ca_extensions(key: Any, issuer_key: Any, *, root: bool, crl_url: str) -> list[bytes]:
    from enarx.attestation.simulate.pki import authority_key_id, basic_constraints, key_usage, subject_key_id

    exts = [key_usage(True), subject_key_id(key.public_key())]
    if root:
        exts += [basic_constraints(True)]
    else:
        exts = [subject_key_id(key.public_key()), authority_key_id(issuer_key.public_key()),
                basic_constraints(True, 0), key_usage(True)]
    return exts + [crl_distribution_point(crl_url)]


@dataclass
class SnpTestPki:
    """A test ARK → ASK / ASVK hierarchy for one product, named exactly as AMD names its own."""

    product: str
    ark_key: Any
    ask_key: Any
    asvk_key: Any
    ark: bytes
    ask: bytes
    asvk: bytes

    @classmethod
    def create(cls, product: str = "Milan", *, key_size: int = 4096, fresh_keys: bool = False,
               not_before: datetime | None = None) -> SnpTestPki:
        product = _product(product)
        ark_key = rsa_key("amd-ark", key_size, fresh=fresh_keys)
        ask_key = rsa_key("amd-ask", key_size, fresh=fresh_keys)
        asvk_key = rsa_key("amd-asvk", key_size, fresh=fresh_keys)
        start = not_before or datetime(2020, 1, 1, tzinfo=UTC)
        end = start + timedelta(days=365 * 25)
        ark_name = _amd_name(f"ARK-{product}")
        ark = issue_certificate(
            subject=ark_name, issuer=ark_name, public_key=ark_key.public_key(), signing_key=ark_key,
            algorithm=RSA_PSS_SHA384, serial=0x10000 * (1 + list(PRODUCTS).index(product)),
            not_before=start, not_after=end,
            extensions=_ca_extensions(ark_key, ark_key, root=True,
                                      crl_url=f"https://kdsintf.amd.com/vcek/v1/{product}/crl"),
        )
        ask = issue_certificate(
            subject=_amd_name(f"SEV-{product}"), issuer=ark_name, public_key=ask_key.public_key(),
            signing_key=ark_key, algorithm=RSA_PSS_SHA384,
            serial=0x10001 * (1 + list(PRODUCTS).index(product)), not_before=start, not_after=end,
            extensions=_ca_extensions(ask_key, ark_key, root=False,
                                      crl_url=f"https://kdsintf.amd.com/vcek/v1/{product}/crl"),
        )
        asvk = issue_certificate(
            subject=_amd_name(f"SEV-VLEK-{product}"), issuer=ark_name, public_key=asvk_key.public_key(),
            signing_key=ark_key, algorithm=RSA_PSS_SHA384,
            serial=0x10101 * (1 + list(PRODUCTS).index(product)), not_before=start, not_after=end,
            extensions=_ca_extensions(asvk_key, ark_key, root=False,
                                      crl_url=f"https://kdsintf.amd.com/vlek/v1/{product}/crl"),
        )
        return cls(product, ark_key, ask_key, asvk_key, ark, ask, asvk)

    @property
    def ark_pem(self) -> bytes:
        return pem("CERTIFICATE", self.ark)

    def chain_pem(self, kind: str = "vcek") -> bytes:
        """KDS ``cert_chain`` layout: the intermediate (ASK or ASVK) then the ARK."""
        middle = self.asvk if kind == "vlek" else self.ask
        return pem("CERTIFICATE", middle) + pem("CERTIFICATE", self.ark)


_PKI_CACHE: dict[str, SnpTestPki] = {}


def default_pki(product: str = "Milan") -> SnpTestPki:
    """The process-wide test PKI for ``product`` (created once; keys are shared test keys)."""
    product = _product(product)
    if product not in _PKI_CACHE:
        _PKI_CACHE[product] = SnpTestPki.create(product)
    return _PKI_CACHE[product]


def _product(product: str) -> str:
    base = product.split("-")[0].capitalize()
    if base not in PRODUCTS:
        raise ValueError(f"unknown product {product!r} (Milan, Genoa or Turin)")
    return base


@dataclass
class SimulatedEvidence:
    """What :func:`simulate_snp` produced: report bytes, collateral, the test anchor, and file paths."""

    report: bytes
    parsed: SnpReport
    collateral: CollateralSet
    anchors: list[Any]  # cryptography certificates of the test root(s)
    anchor_pem: bytes
    endorsement_key: ec.EllipticCurvePrivateKey
    endorsement_cert: bytes  # VCEK or VLEK, DER
    chain_pem: bytes
    crls: list[bytes]
    pki: SnpTestPki
    paths: dict[str, Path] = field(default_factory=dict)

    def trust_anchors(self) -> TrustAnchors:
        """The built-in vendor roots plus this simulation's test root (as ``--trust-anchor`` would)."""
        return roots.builtin_anchors(self.anchors)


def build_policy(*, abi_major: int = 1, abi_minor: int = 55, smt: bool = True, migrate_ma: bool = False,
                 debug: bool = False, single_socket: bool = False, extra: int = 0) -> int:
    """A guest policy value with the reserved bit 17 set, as the firmware requires."""
    value = abi_minor | (abi_major << 8) | abi.POLICY_RESERVED_1 | extra
    if smt:
        value |= abi.POLICY_SMT
    if migrate_ma:
        value |= abi.POLICY_MIGRATE_MA
    if debug:
        value |= abi.POLICY_DEBUG
    if single_socket:
        value |= abi.POLICY_SINGLE_SOCKET
    return value


def _as_tcb(value: TcbVersion | dict[str, int] | None, product: str) -> TcbVersion:
    if value is None:
        return DEFAULT_TCB[product]
    if isinstance(value, TcbVersion):
        tcb = value
    else:
        tcb = TcbVersion(**value)
    if product == "Turin" and tcb.fmc is None:
        tcb = TcbVersion(tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode, fmc=0)
    if product != "Turin" and tcb.fmc is not None:
        raise ValueError("only Turin TCBs have an fmc component")
    for name, v in tcb.components().items():
        if not 0 <= v <= 255:
            raise ValueError(f"TCB component {name}={v} is outside 0..255")
    return tcb


def _int_ext(oid: str, value: int) -> bytes:
    return der.extension(oid, der.integer(value))


def simulate_snp(
    out_dir: str | Path | None = None,
    *,
    report_data: bytes = b"",
    measurement: bytes | None = None,
    host_data: bytes = b"",
    id_key_digest: bytes = b"",
    author_key_digest: bytes | None = None,
    family_id: bytes = b"",
    image_id: bytes = b"",
    guest_svn: int = 0,
    debug: bool = False,
    policy: int | None = None,
    smt: bool = True,
    migrate_ma: bool = False,
    single_socket: bool = False,
    abi_version: tuple[int, int] = (1, 55),
    vmpl: int = 0,
    tcb: TcbVersion | dict[str, int] | None = None,
    current_tcb: TcbVersion | dict[str, int] | None = None,
    committed_tcb: TcbVersion | dict[str, int] | None = None,
    launch_tcb: TcbVersion | dict[str, int] | None = None,
    platform_info: int = 0x25,
    firmware: tuple[int, int, int] = (1, 55, 29),
    chip_id: bytes | None = None,
    mask_chip_id: bool = False,
    report_id: bytes | None = None,
    product: str = "Milan",
    signing_key: str = "vcek",
    csp_id: str = "cc-simulated.enarx.dev",
    version: int = 3,
    mit_vectors: tuple[int, int] = (0, 0),
    revoke_vcek: bool = False,
    revoke_ask: bool = False,
    crl: bool = True,
    crl_this_update: datetime | None = None,
    crl_next_update: datetime | None = None,
    vcek_not_before: datetime | None = None,
    vcek_not_after: datetime | None = None,
    vcek_hwid: bytes | None = None,
    vcek_tcb: TcbVersion | dict[str, int] | None = None,
    vcek_product_name: str | None = None,
    cpuid: tuple[int, int, int] | None = None,
    at: datetime | None = None,
    pki: SnpTestPki | None = None,
) -> SimulatedEvidence:
    """Issue one signed SEV-SNP report and its collateral. Every report field is settable.

    ``policy`` overrides the guest policy entirely; otherwise it is built from ``debug``, ``smt``,
    ``migrate_ma``, ``single_socket`` and ``abi_version``. ``tcb`` is the reported TCB the VCEK is issued
    for (``current_tcb``/``committed_tcb``/``launch_tcb`` default to it). ``revoke_vcek`` adds a CRL from
    the ASK listing the VCEK (serial 0); ``revoke_ask`` lists the ASK/ASVK in the ARK CRL. ``at`` is the
    instant the evidence is produced (default now): certificates and CRLs are valid around it.

    For negative tests of single checks, the VCEK can be issued — with the report's own key, so its
    signature still verifies — for another chip (``vcek_hwid``), another TCB (``vcek_tcb``) or another
    product name (``vcek_product_name``); ``cpuid`` = (family, model, stepping) overrides the report's CPUID.
    """
    product = _product(product)
    if signing_key not in ("vcek", "vlek"):
        raise ValueError("signing_key must be 'vcek' or 'vlek'")
    if version not in abi.SUPPORTED_VERSIONS:
        raise ValueError(f"report version must be one of {abi.SUPPORTED_VERSIONS}")
    if product == "Turin" and version < 3:
        raise ValueError("Turin reports are version 3 or later")
    if not 0 <= vmpl <= 3:
        raise ValueError("vmpl must be 0..3")
    pki = pki or default_pki(product)
    at = (at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    reported = _as_tcb(tcb, product)
    turin = product == "Turin"
    fam, model, stepping, product_name = PRODUCTS[product]
    if cpuid is not None:
        fam, model, stepping = cpuid
    product_name = vcek_product_name or product_name
    certified = _as_tcb(vcek_tcb, product) if vcek_tcb is not None else reported

    if policy is None:
        policy = build_policy(abi_major=abi_version[0], abi_minor=abi_version[1], smt=smt,
                              migrate_ma=migrate_ma, debug=debug, single_socket=single_socket)
    vlek = signing_key == "vlek"
    if chip_id is None:
        chip_id = hashlib.sha512(b"enarx simulated chip " + product.encode()).digest()
    if vlek or mask_chip_id:
        chip_id = bytes(64)
    flags = (1 if author_key_digest is not None else 0) | (2 if mask_chip_id else 0) | ((1 if vlek else 0) << 2)

    key = ec.generate_private_key(ec.SECP384R1())
    report = SnpReport(
        version=version, guest_svn=guest_svn, policy=policy, family_id=family_id, image_id=image_id,
        vmpl=vmpl, signature_algo=abi.ECDSA_P384_SHA384,
        current_tcb_raw=_as_tcb(current_tcb or reported, product).encode(turin),
        platform_info=platform_info, flags=flags, report_data=report_data,
        measurement=DEFAULT_MEASUREMENT if measurement is None else measurement,
        host_data=host_data, id_key_digest=id_key_digest, author_key_digest=author_key_digest or b"",
        report_id=report_id if report_id is not None else os.urandom(32), report_id_ma=b"\xff" * 32,
        reported_tcb_raw=reported.encode(turin),
        cpuid_family=fam if version >= 3 else 0, cpuid_model=model if version >= 3 else 0,
        cpuid_stepping=stepping if version >= 3 else 0,
        chip_id=chip_id, committed_tcb_raw=_as_tcb(committed_tcb or reported, product).encode(turin),
        current_build=firmware[2], current_minor=firmware[1], current_major=firmware[0],
        committed_build=firmware[2], committed_minor=firmware[1], committed_major=firmware[0],
        launch_tcb_raw=_as_tcb(launch_tcb or reported, product).encode(turin),
        launch_mit_vector=mit_vectors[0], current_mit_vector=mit_vectors[1],
        signature_r=0, signature_s=0,
    )
    signed = abi.encode_report(report, signed_only=True)[: abi.SIGNED_SIZE]
    r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA384())))
    report = abi.with_signature(report, r, s)

    # VCEK / VLEK, exactly as KDS issues them: serial 0, AMD extensions only, RSASSA-PSS by ASK/ASVK
    amd = "1.3.6.1.4.1.3704.1"
    exts = [der.extension(f"{amd}.1", der.integer(0)),
            der.extension(f"{amd}.2", der.ia5(product_name if not vlek else product)),
            _int_ext(f"{amd}.3.1", certified.bootloader), _int_ext(f"{amd}.3.2", certified.tee),
            _int_ext(f"{amd}.3.4", 0), _int_ext(f"{amd}.3.5", 0), _int_ext(f"{amd}.3.6", 0),
            _int_ext(f"{amd}.3.7", 0), _int_ext(f"{amd}.3.3", certified.snp),
            _int_ext(f"{amd}.3.8", certified.microcode)]
    if turin:
        exts.append(_int_ext(f"{amd}.3.9", certified.fmc or 0))
    if vlek:
        exts.append(der.extension(f"{amd}.5", der.ia5(f"CN={csp_id}")))
    else:
        hwid = vcek_hwid if vcek_hwid is not None else chip_id
        exts.append(der.extension(f"{amd}.4", hwid[:8] if turin else hwid))
    issuer_name = _amd_name(f"SEV-VLEK-{product}" if vlek else f"SEV-{product}")
    issuer_key = pki.asvk_key if vlek else pki.ask_key
    not_before = vcek_not_before or at - timedelta(days=1)
    not_after = vcek_not_after or not_before + timedelta(days=365 if vlek else 365 * 7)
    leaf_name = _amd_name("SEV-VLEK" if vlek else "SEV-VCEK")
    leaf = issue_certificate(subject=leaf_name, issuer=issuer_name, public_key=key.public_key(),
                             signing_key=issuer_key, algorithm=RSA_PSS_SHA384, serial=0,
                             not_before=not_before, not_after=not_after, extensions=exts)

    crls: list[bytes] = []
    this_update = crl_this_update or at - timedelta(days=1)
    next_update = crl_next_update or this_update + timedelta(days=30)
    if crl or revoke_ask:
        revoked = [(Cert.from_der(pki.asvk if vlek else pki.ask).serial, this_update)] if revoke_ask else []
        crls.append(issue_crl(issuer=_amd_name(f"ARK-{product}"), signing_key=pki.ark_key,
                              algorithm=RSA_PSS_SHA384, this_update=this_update, next_update=next_update,
                              revoked=revoked))
    if revoke_vcek:
        crls.append(issue_crl(issuer=issuer_name, signing_key=issuer_key, algorithm=RSA_PSS_SHA384,
                              this_update=this_update, next_update=next_update, revoked=[(0, this_update)]))

    chain = pki.chain_pem(signing_key)
    collateral = from_ders([leaf, pki.asvk if vlek else pki.ask, pki.ark], crls, source="simulator")
    anchor = Cert.from_der(pki.ark).to_cryptography()
    sim = SimulatedEvidence(
        report=report.raw, parsed=report, collateral=collateral, anchors=[anchor], anchor_pem=pki.ark_pem,
        endorsement_key=key, endorsement_cert=leaf, chain_pem=chain, crls=crls, pki=pki,
    )
    if out_dir is not None:
        sim.paths = write_files(sim, Path(out_dir))
    return sim


def write_files(sim: SimulatedEvidence, out: Path) -> dict[str, Path]:
    """Write the evidence and collateral as files a verifier (or a human) would receive them."""
    out.mkdir(parents=True, exist_ok=True)
    kind = sim.parsed.signing_key
    files = {
        "report": ("report.bin", sim.report),
        kind: (f"{kind}.der", sim.endorsement_cert),
        "cert_chain": ("cert_chain.pem", sim.chain_pem),
        "root": ("root.pem", sim.anchor_pem),
    }
    for i, crl_der in enumerate(sim.crls):
        files[f"crl{i}"] = ("ark.crl.der" if i == 0 and not _is_leaf_crl(sim, crl_der) else f"crl{i}.der", crl_der)
    paths = {}
    for label, (name, data) in files.items():
        path = out / name
        path.write_bytes(data)
        paths[label] = path
    return paths


def _is_leaf_crl(sim: SimulatedEvidence, crl_der: bytes) -> bool:
    from enarx.attestation.pki import Crl

    return "ARK-" not in Crl.from_der(crl_der).issuer
