"""Is this SEV-SNP report genuine and current? Signatures, chains, CRLs and VCEK/VLEK ↔ report matching.

Given a parsed report, the caller's collateral, a verification time and trust anchors:

1. pick the endorsement key certificate (VCEK or VLEK, as the report's ``signing_key`` says);
2. build VCEK→ASK→ARK or VLEK→ASVK→ARK from the supplied certificates up to an anchor (RSASSA-PSS,
   SHA-384, salt 48 — whatever the certificate declares is what is checked);
3. every certificate valid at ``at``; every applicable CRL current at ``at`` and not listing the chain;
4. ECDSA P-384/SHA-384 signature over report bytes ``[0, 0x2A0)`` (r, s little-endian) by the leaf;
5. the leaf's TCB extensions equal the report's ``reported_tcb``, its hwID equals ``chip_id`` (Turin:
   the first 8 bytes), and the product (ARK, VCEK product name, CPUID) is consistent.

Nothing here decides acceptability (debug, measurements, TCB minimums): that is :mod:`..policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx.attestation import roots
from enarx.attestation.collateral import certificates_of, crls_of
from enarx.attestation.model import (
    Check,
    Claims,
    CollateralSet,
    TcbStatus,
    Tee,
    TrustAnchors,
    VerificationError,
)
from enarx.attestation.pki import Cert, build_path, check_revocation, check_validity, extension_value
from enarx.attestation.snp.abi import SnpReport, TcbVersion

AMD_OID = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION = AMD_OID + ".1"
OID_PRODUCT_NAME = AMD_OID + ".2"
OID_BL_SPL = AMD_OID + ".3.1"
OID_TEE_SPL = AMD_OID + ".3.2"
OID_SNP_SPL = AMD_OID + ".3.3"
OID_UCODE_SPL = AMD_OID + ".3.8"
OID_FMC_SPL = AMD_OID + ".3.9"
OID_HWID = AMD_OID + ".4"
OID_CSP_ID = AMD_OID + ".5"


@dataclass(frozen=True)
class EndorsementKey:
    """The AMD-specific content of a VCEK or VLEK certificate."""

    cert: Cert
    kind: str  # "vcek" | "vlek"
    product: str | None  # "Milan", "Genoa", "Turin" (from productName, e.g. "Milan-B0")
    product_name: str | None
    tcb: TcbVersion
    hwid: bytes | None
    csp_id: str | None


def _int_ext(cert: Cert, oid: str) -> int | None:
    value = extension_value(cert, oid)
    return value if isinstance(value, int) else None


def endorsement_key(cert: Cert) -> EndorsementKey | None:
    """Read a VCEK/VLEK's AMD extensions; ``None`` when ``cert`` is not one."""
    if OID_BL_SPL not in cert.extensions or OID_SNP_SPL not in cert.extensions:
        return None
    name = extension_value(cert, OID_PRODUCT_NAME)
    product_name = name if isinstance(name, str) else None
    product = None
    if product_name:
        base = product_name.split("-")[0].capitalize()
        product = base if base in roots.PRODUCTS else None
    hwid_raw = cert.extensions.get(OID_HWID)
    hwid = None
    if hwid_raw is not None:
        hwid = hwid_raw
        # current KDS certificates carry the raw bytes; accept an OCTET STRING wrapper too
        if len(hwid_raw) >= 2 and hwid_raw[0] == 0x04 and hwid_raw[1] == len(hwid_raw) - 2 and len(hwid_raw) - 2 in (8, 64):
            hwid = hwid_raw[2:]
    csp = extension_value(cert, OID_CSP_ID)
    csp_id = csp if isinstance(csp, str) else None
    kind = "vlek" if (csp_id is not None or "VLEK" in cert.subject) and hwid is None else "vcek"
    fmc = _int_ext(cert, OID_FMC_SPL)
    tcb = TcbVersion(
        bootloader=_int_ext(cert, OID_BL_SPL) or 0,
        tee=_int_ext(cert, OID_TEE_SPL) or 0,
        snp=_int_ext(cert, OID_SNP_SPL) or 0,
        microcode=_int_ext(cert, OID_UCODE_SPL) or 0,
        fmc=fmc,
    )
    return EndorsementKey(cert, kind, product, product_name, tcb, hwid, csp_id)


def _hwid_matches(key: EndorsementKey, report: SnpReport) -> bool | None:
    """True/False when comparable, None when the report masks its chip id (VLEK, MASK_CHIP_ID)."""
    if key.hwid is None or report.mask_chip_key or not any(report.chip_id):
        return None
    if len(key.hwid) == 8:
        return report.chip_id[:8] == key.hwid
    return report.chip_id == key.hwid


def _tcb_matches(key: EndorsementKey, report: SnpReport) -> bool:
    reported = report.reported_tcb
    same = (
        key.tcb.bootloader == reported.bootloader
        and key.tcb.tee == reported.tee
        and key.tcb.snp == reported.snp
        and key.tcb.microcode == reported.microcode
    )
    if report.is_turin and key.tcb.fmc is not None:
        same = same and key.tcb.fmc == reported.fmc
    return same


def select_endorsement_key(report: SnpReport, certs: list[Cert]) -> EndorsementKey:
    """The VCEK/VLEK certificate for ``report`` among ``certs`` (best hwID/TCB match first)."""
    wanted = report.signing_key
    if wanted not in ("vcek", "vlek"):
        raise VerificationError(
            f"report is not signed by an AMD key (signing_key={wanted})", reason="signature",
            checks=[Check("snp.signing-key", False, "report carries no VCEK/VLEK signature",
                          expected="vcek or vlek", actual=wanted)],
        )
    keys = [k for k in (endorsement_key(c) for c in certs) if k is not None]
    matching = [k for k in keys if k.kind == wanted]
    if not matching:
        found = ", ".join(sorted({k.kind.upper() for k in keys})) or "none"
        raise VerificationError(
            f"no {wanted.upper()} certificate among the collateral (found: {found}); supply it with "
            f"--collateral (e.g. fetched into a cache from AMD KDS)",
            reason="collateral",
            checks=[Check("snp.endorsement-key", False, f"no {wanted.upper()} supplied", expected=wanted,
                          actual=found)],
        )

    def score(k: EndorsementKey) -> tuple[int, int]:
        return (1 if _hwid_matches(k, report) else 0, 1 if _tcb_matches(k, report) else 0)

    return max(matching, key=score)


def verify_report_signature(report: SnpReport, public_key: object) -> bool:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp384r1":
        return False
    try:
        sig = encode_dss_signature(report.signature_r, report.signature_s)
        public_key.verify(sig, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _anchor_product(anchor: Cert) -> str | None:
    for product in roots.PRODUCTS:
        if anchor.subject.endswith(f"CN=ARK-{product}") or f"CN=ARK-{product}," in anchor.subject:
            return product
    return None


def verify_report(
    report: SnpReport,
    collateral: CollateralSet | None,
    at: datetime,
    anchors: TrustAnchors,
) -> tuple[Claims, list[Check], list[str]]:
    """Verify ``report`` as of ``at``. Returns (claims, checks, warnings); raises ``VerificationError``."""
    checks: list[Check] = []
    warnings: list[str] = []
    certs = certificates_of(collateral)
    key = select_endorsement_key(report, certs)
    kind = key.kind.upper()
    checks.append(Check("snp.endorsement-key", True, f"{kind} {key.cert.name} ({key.product_name or '?'})"))

    builtin, extra = roots.anchor_certs(anchors)
    try:
        path, anchor, chain_checks = build_path(key.cert, certs, builtin + extra)
    except VerificationError as exc:
        exc.checks = checks + exc.checks
        raise
    checks += chain_checks
    test_anchor = any(a.same_as(anchor) for a in extra) and not any(b.same_as(anchor) for b in builtin)

    try:
        checks += check_validity(path, at)
        crl_checks, crl_warnings, used_crls = check_revocation(path, crls_of(collateral), at)
    except VerificationError as exc:
        exc.checks = checks + exc.checks
        raise
    checks += crl_checks
    warnings += crl_warnings

    # product consistency: ARK vs productName vs CPUID
    anchor_product = _anchor_product(anchor)
    products = {"trust anchor": anchor_product, f"{kind} productName": key.product, "report CPUID": report.product}
    known = {k: v for k, v in products.items() if v}
    if len(set(known.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in known.items())
        checks.append(Check("snp.product", False, detail, expected="one product", actual=detail))
        raise VerificationError(f"product mismatch: {detail}", reason="chain", checks=checks)
    product = next(iter(known.values()), None)
    checks.append(Check("snp.product", True, product or "unknown"))

    if not verify_report_signature(report, key.cert.public_key):
        checks.append(Check("snp.report-signature", False, f"ECDSA P-384 signature does not verify with the {kind}"))
        raise VerificationError(
            f"report signature does not verify with the {kind} {key.cert.name!r}", reason="signature",
            checks=checks,
        )
    checks.append(Check("snp.report-signature", True, f"ECDSA P-384/SHA-384 by the {kind}"))

    hw = _hwid_matches(key, report)
    if hw is False:
        checks.append(Check("snp.hwid", False, "VCEK hwID differs from the report's chip_id",
                            expected=report.chip_id.hex(), actual=(key.hwid or b"").hex()))
        raise VerificationError(f"{kind} was issued for another chip (hwID ≠ chip_id)", reason="collateral",
                                checks=checks)
    checks.append(Check("snp.hwid", True, "matches chip_id" if hw else "not comparable (chip id masked / VLEK)"))
    if not _tcb_matches(key, report):
        checks.append(Check("snp.tcb-match", False, f"{kind} TCB differs from reported_tcb",
                            expected=str(report.reported_tcb), actual=str(key.tcb)))
        raise VerificationError(
            f"{kind} TCB ({key.tcb}) does not match the report's reported_tcb ({report.reported_tcb})",
            reason="collateral", checks=checks,
        )
    checks.append(Check("snp.tcb-match", True, f"{kind} TCB = reported_tcb ({report.reported_tcb})"))

    expiries = [c.not_after for c in path] + [c.next_update for c in used_crls if c.next_update]
    claims = claims_from_report(report, product=product, key=key)
    claims.collateral_expiry = min(expiries) if expiries else None
    claims.tcb_status = TcbStatus.UP_TO_DATE
    claims.platform["anchor"] = anchor.subject
    claims.platform["anchor_sha256"] = anchor.sha256
    claims.platform["test_anchor"] = test_anchor
    claims.platform["crl_checked"] = bool(used_crls)
    return claims, checks, warnings


def claims_from_report(report: SnpReport, *, product: str | None = None, key: EndorsementKey | None = None) -> Claims:
    """The normalized claim set of a (verified) report."""
    reported = report.reported_tcb
    svns = {"guest_svn": report.guest_svn, **reported.components()}
    signer = {"id_key_digest": report.id_key_digest.hex()}
    if report.author_key_en:
        signer["author_key_digest"] = report.author_key_digest.hex()
    platform = {
        "product": product or report.product,
        "chip_id": report.chip_id.hex(),
        "vmpl": report.vmpl,
        "policy": report.policy,
        "policy_flags": report.policy_flags(),
        "abi": f"{report.abi_major}.{report.abi_minor}",
        "platform_info": report.platform_flags(),
        "signing_key": report.signing_key,
        "report_version": report.version,
        "current_tcb": report.current_tcb.components(),
        "committed_tcb": report.committed_tcb.components(),
        "launch_tcb": report.launch_tcb.components(),
        "firmware": f"{report.current_major}.{report.current_minor}.{report.current_build}",
        "report_id": report.report_id.hex(),
    }
    if key is not None:
        platform["endorsement_key"] = key.cert.subject
        if key.csp_id:
            platform["csp_id"] = key.csp_id
    return Claims(
        tee=Tee.SNP,
        measurements={
            "measurement": report.measurement.hex(),
            "host_data": report.host_data.hex(),
            "family_id": report.family_id.hex(),
            "image_id": report.image_id.hex(),
        },
        signer=signer,
        svns=svns,
        debug=report.debug,
        report_data=report.report_data,
        platform=platform,
    )
