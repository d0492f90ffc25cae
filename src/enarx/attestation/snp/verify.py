"""Is this SEV-SNP report genuine and current? Signatures, chains, CRLs and VCEK/VLEK ↔ report matching.

Given a parsed report and a :class:`~enarx.attestation.context.Context`:

1. pick the endorsement key certificate (VCEK or VLEK, as the report's ``signing_key`` says);
2. validate VCEK→ASK→ARK or VLEK→ASVK→ARK with the one path validator (:mod:`..chain`), ending at an ARK
   anchor (RSASSA-PSS, SHA-384, salt 48 — whatever the certificate declares is what is checked). AMD's
   CRL is the ARK's: it covers ASK/ASVK; VCEKs are not revoked by CRL;
3. ECDSA P-384/SHA-384 signature over report bytes ``[0, 0x2A0)`` (r, s little-endian) by the leaf;
4. the leaf's TCB extensions equal the report's ``reported_tcb``, its hwID equals ``chip_id`` (Turin:
   the first 8 bytes), and the product (ARK, VCEK product name, CPUID) is consistent.

The TCB status is ``NotEvaluated``: AMD publishes no TCB status service, so the policy's ``min_tcb`` (if
any) is the reference (see :meth:`enarx.attestation.policy.Policy.evaluate_tcb`). Nothing here decides
acceptability (debug, measurements, VMPL): that is :mod:`..policy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx.attestation import crypto, roots
from enarx.attestation.chain import CrlScope
from enarx.attestation.claims import Provenance, SnpClaims
from enarx.attestation.context import Context
from enarx.attestation.model import TcbStatus
from enarx.attestation.pki import Cert, extension_value
from enarx.attestation.snp.abi import SnpReport, TcbVersion, parse_report

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


def select_endorsement_key(report: SnpReport, certs: list[Cert], ctx: Context) -> EndorsementKey:
    """The VCEK/VLEK certificate for ``report`` among ``certs`` (best hwID/TCB match first)."""
    wanted = report.signing_key
    if wanted not in ("vcek", "vlek"):
        raise ctx.trail.fail("snp.signing-key", "report carries no VCEK/VLEK signature", "signature",
                             expected="vcek or vlek", actual=wanted)
    keys = [k for k in (endorsement_key(c) for c in certs) if k is not None]
    matching = [k for k in keys if k.kind == wanted]
    if not matching:
        found = ", ".join(sorted({k.kind.upper() for k in keys})) or "none"
        raise ctx.trail.fail("snp.endorsement-key", f"no {wanted.upper()} certificate among the collateral "
                             f"(found: {found}); supply it with --collateral (e.g. fetched into a cache from AMD KDS)",
                             "collateral", expected=wanted, actual=found)

    def score(k: EndorsementKey) -> tuple[int, int]:
        return (1 if _hwid_matches(k, report) else 0, 1 if _tcb_matches(k, report) else 0)

    return max(matching, key=score)


def verify_report_signature(report: SnpReport, public_key: object) -> bool:
    if getattr(getattr(public_key, "curve", None), "name", None) != "secp384r1":
        return False
    sig = encode_dss_signature(report.signature_r, report.signature_s)
    return crypto.verify(public_key, crypto.ECDSA_SHA384, report.signed_bytes, sig)


def verify(data: bytes, ctx: Context) -> SnpClaims:
    """Verify SEV-SNP report bytes in ``ctx``; returns the claims or raises ``VerificationError``."""
    report = parse_report(data)
    trail = ctx.trail
    key = select_endorsement_key(report, ctx.supplied_certs() + (ctx.store.certificates if ctx.store else []), ctx)
    kind = key.kind.upper()
    trail.ok("snp.endorsement-key", f"{kind} {key.cert.name} ({key.product_name or '?'})")
    result = ctx.chain(key.cert, CrlScope.BELOW_ANCHOR, name="snp.chain")

    # product consistency: ARK vs productName vs CPUID
    products = {"trust anchor": result.anchor.product, f"{kind} productName": key.product,
                "report CPUID": report.product}
    known = {k: v for k, v in products.items() if v}
    if len(set(known.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in known.items())
        raise trail.fail("snp.product", f"product mismatch: {detail}", "chain", expected="one product", actual=detail)
    product = next(iter(known.values()), None)
    trail.ok("snp.product", product or "unknown")

    if not verify_report_signature(report, key.cert.public_key):  # the evidence itself: never memoized
        raise trail.fail("snp.report-signature", f"report signature does not verify with the {kind} "
                         f"{key.cert.name!r} (ECDSA P-384)", "signature")
    trail.ok("snp.report-signature", f"ECDSA P-384/SHA-384 by the {kind}")

    hw = _hwid_matches(key, report)
    if hw is False:
        raise trail.fail("snp.hwid", f"{kind} was issued for another chip (hwID ≠ chip_id)", "collateral",
                         expected=report.chip_id.hex(), actual=(key.hwid or b"").hex())
    trail.ok("snp.hwid", "matches chip_id" if hw else "not comparable (chip id masked / VLEK)")
    if not _tcb_matches(key, report):
        raise trail.fail("snp.tcb-match", f"{kind} TCB ({key.tcb}) does not match the report's reported_tcb "
                         f"({report.reported_tcb})", "collateral",
                         expected=str(report.reported_tcb), actual=str(key.tcb))
    trail.ok("snp.tcb-match", f"{kind} TCB = reported_tcb ({report.reported_tcb})")

    provenance = Provenance(anchor=result.anchor.cert.subject, anchor_sha256=result.anchor.cert.sha256,
                            test_anchor=result.anchor.test, revocation=result.revocation, unchecked=result.unchecked,
                            collateral_expiry=result.expiry)
    return claims_from_report(report, provenance, product=product, key=key)


def claims_from_report(report: SnpReport, provenance: Provenance | None = None, *, product: str | None = None,
                       key: EndorsementKey | None = None) -> SnpClaims:
    """The typed claims of a (verified) report; ``provenance`` defaults to "nothing verified"."""
    from enarx.attestation.model import Revocation

    return SnpClaims(
        report_data=report.report_data, debug=report.debug,
        provenance=provenance or Provenance("", "", False, Revocation.NOT_CHECKED),
        tcb_status=TcbStatus.NOT_EVALUATED,
        measurement=report.measurement, host_data=report.host_data, family_id=report.family_id,
        image_id=report.image_id, id_key_digest=report.id_key_digest,
        author_key_digest=report.author_key_digest if report.author_key_en else None,
        guest_svn=report.guest_svn, vmpl=report.vmpl, policy=report.policy,
        abi=(report.abi_major, report.abi_minor), product=product or report.product, chip_id=report.chip_id,
        signing_key=report.signing_key, report_version=report.version, reported_tcb=report.reported_tcb,
        current_tcb=report.current_tcb, committed_tcb=report.committed_tcb, launch_tcb=report.launch_tcb,
        firmware=(report.current_major, report.current_minor, report.current_build),
        platform_info=report.platform_info, report_id=report.report_id,
        csp_id=key.csp_id if key else None, endorsement_key=key.cert.subject if key else "",
    )
