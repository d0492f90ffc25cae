"""Is an Intel DCAP quote genuine and current? Signatures, the PCK chain, TCB info, QE identity.

:func:`verify` never decides whether a genuine quote is *acceptable*: it reports the TCB status, the
advisories, the debug bit and which collateral was present (TCB info, QE identity, CRL coverage) in the
claims, and the policy decides. Missing collateral is therefore not an error here — it is a fact the
default policy refuses. Wrong collateral (a forged signature, another platform's PCE-ID, a TCB signer
that is not Intel's TCB signing certificate, a root other than the PCK's) is an error.

Order (Intel's quote verification): attestation-key signature → QE report binding (SHA-256 of the
attestation key and QE auth data, reserved bytes zero) → QE report signature by the PCK → PCK chain
(exactly PCK ← PCK CA ← root; the one path validator, CRLs) → PCE-ID consistency → TCB info (signature,
signer chain to the *same* root, freshness, FMSPC, PCE-ID, level matching, TDX module) → QE identity →
status convergence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation import crypto
from enarx.attestation.chain import ChainResult, CrlItem, CrlScope, coverage
from enarx.attestation.claims import Provenance, SgxClaims, TdxClaims
from enarx.attestation.context import Context
from enarx.attestation.intel import abi
from enarx.attestation.intel.collateral import (
    EnclaveIdentity,
    IntelCollateral,
    IsvLevel,
    TcbInfo,
    TcbLevel,
    is_intel_document,
    parse_document,
    recency,
)
from enarx.attestation.intel.pck import PckExtensions, has_sgx_extensions, pck_extensions
from enarx.attestation.model import Check, MalformedEvidence, TcbStatus
from enarx.attestation.pki import Cert, CertificateFormatError, split_pem

_CONFIG = {TcbStatus.CONFIGURATION_NEEDED, TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED}
_GOOD = {TcbStatus.UP_TO_DATE, TcbStatus.SW_HARDENING_NEEDED}


@dataclass
class _Documents:
    """Intel JSON collateral available to this verification, each item tagged with where it came from."""

    tcb_infos: list[tuple[TcbInfo, bool]]  # (item, from_store)
    qe_identities: list[tuple[EnclaveIdentity, bool]]
    certificates: list[Cert]
    crls: list[CrlItem]


def _documents(ctx: Context) -> _Documents:
    out = _Documents([], [], [], ctx.crl_items())
    for name, raw, from_store in ctx.json_documents():
        if not is_intel_document(raw):
            continue
        doc: IntelCollateral = ctx.parsed(b"intel-json", raw, lambda raw, name=name: parse_document(raw, name))
        out.tcb_infos += [(t, from_store) for t in doc.tcb_infos]
        out.qe_identities += [(q, from_store) for q in doc.qe_identities]
        out.certificates += ctx.certs(doc.certificates, name)
        out.crls += [CrlItem(ctx.crl(der), from_store) for der in doc.crls]
    return out


def verify(data: bytes, ctx: Context) -> SgxClaims | TdxClaims:
    """Verify a DCAP ECDSA quote (SGX v3, TDX v4/v5) in ``ctx``; claims or ``VerificationError``."""
    trail = ctx.trail
    q = abi.parse_quote(data)
    kind = "TDX" if q.is_tdx else "SGX"
    trail.ok("quote-format", f"v{q.header.version} {kind} quote, {q.length} bytes"
             + (f" + {len(data) - q.length} trailing bytes ignored" if len(data) > q.length else ""))
    if q.header.qe_vendor_id != abi.INTEL_QE_VENDOR_ID:
        trail.warn(f"QE vendor id {q.header.qe_vendor_id.hex()} is not Intel's")
    docs = _documents(ctx)

    # 1. the attestation key signs header + body
    try:  # a platform's attestation key is the same in each of its quotes: its parsed form is cached
        att_key = ctx.parsed(b"p256-point", q.attestation_key,
                             lambda raw: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw))
    except ValueError:
        raise trail.fail("attestation-key-signature", "attestation key is not a P-256 point", "signature") from None
    if not crypto.verify_raw_ecdsa(att_key, crypto.ECDSA_SHA256, q.signed_region, q.signature):
        raise trail.fail("attestation-key-signature", "quote signature over header+body does not verify", "signature")
    trail.ok("attestation-key-signature", "ECDSA-P256 over header and report body")

    # 2. the QE binds the attestation key (and its auth data) in its report data; the rest is reserved
    qe_report = q.qe.qe_report_body
    expected = hashlib.sha256(q.attestation_key + q.qe.qe_auth_data).digest()
    if qe_report.report_data[:32] != expected:
        raise trail.fail("qe-report-binding", "QE report_data does not hold SHA-256(attestation key || QE auth "
                         "data)", "signature", expected=expected.hex(), actual=qe_report.report_data[:32].hex())
    if any(qe_report.report_data[32:]):
        raise trail.fail("qe-report-binding", "QE report_data bytes 32..64 are reserved and must be zero",
                         "signature", expected="00" * 32, actual=qe_report.report_data[32:].hex())
    trail.ok("qe-report-binding", "QE report_data = SHA-256(attestation key || QE auth data) ‖ zeros")

    # 3. the PCK signs the QE report
    quote_certs, pck = _pck_certificate(q, ctx, docs)
    if not crypto.verify_raw_ecdsa(pck.public_key, crypto.ECDSA_SHA256, q.qe.qe_report, q.qe.qe_report_signature):
        raise trail.fail("qe-report-signature", "QE report signature does not verify with the PCK certificate",
                         "signature")
    trail.ok("qe-report-signature", f"QE report signed by {pck.name}")

    # 4. PCK → PCK CA → root: Intel's PKI has nothing else, and the PCK is an end entity
    pool = ctx.pool(*quote_certs, *docs.certificates)
    pck_chain = ctx.chain(pck, CrlScope.ALL, name="pck-chain", pool=pool, crls=docs.crls)
    if len(pck_chain.path) != 3 or pck.is_ca:
        raise trail.fail("pck-chain", f"{pck.name} is not an end-entity certificate issued by an intermediate PCK "
                         f"CA under the root ({len(pck_chain.path)} certificates"
                         + (", the PCK is a CA" if pck.is_ca else "") + ")", "chain")
    try:
        ext = ctx.parsed(b"pck-extensions", pck.der, lambda _: pck_extensions(pck))
    except MalformedEvidence as exc:
        raise trail.fail("pck-extensions", str(exc), "parse", MalformedEvidence) from None
    trail.ok("pck-extensions", f"FMSPC {ext.fmspc.hex()}, PCE-ID {ext.pce_id.hex()}, PCESVN {ext.pcesvn}")
    ppid = q.certification_data.ppid_info
    if ppid is not None and ppid.pce_id is not None and ppid.pce_id != ext.pce_id:
        raise trail.fail("pck-identity", "PCE-ID in the quote does not match the PCK certificate", "collateral",
                         expected=ext.pce_id.hex(), actual=ppid.pce_id.hex())

    # 5. TCB info → platform TCB status
    chains = [pck_chain]
    tee_tcb_svn = q.body.tee_tcb_svn if isinstance(q.body, abi.TdReportBody) else None
    tcb = _tcb(q, ext, tee_tcb_svn, docs, pool, pck_chain, ctx)
    if tcb.chain is not None:
        chains.append(tcb.chain)

    # 6. QE identity → converge with the QE's own TCB status
    status, advisories = tcb.status, tcb.advisories
    qe = _qe_identity(q, qe_report, docs, pool, pck_chain, ctx)
    if qe is not None:
        chains.append(qe[2])
        if status not in (TcbStatus.UNKNOWN, TcbStatus.NOT_SUPPORTED):
            status, advisories = _converge(status, advisories, qe[0], qe[1])

    revocation, unchecked = coverage(chains)
    if unchecked:
        trail.warn("revocation not checked for " + "; ".join(unchecked))
    provenance = Provenance(
        anchor=pck_chain.anchor.cert.subject, anchor_sha256=pck_chain.anchor.cert.sha256,
        test_anchor=pck_chain.anchor.test, revocation=revocation, unchecked=unchecked,
        collateral_expiry=min([c.expiry for c in chains] + ([tcb.expiry] if tcb.expiry else [])
                              + ([qe[3]] if qe else [])),
        tcb_info=tcb.info is not None, qe_identity=qe is not None,
    )
    return _claims(q, qe_report, ext, status, advisories, provenance, tcb, qe[0] if qe else None)


# --------------------------------------------------------------------------------------------------
# claims


def _claims(q: abi.Quote, qe: abi.SgxReportBody, ext: PckExtensions, status: TcbStatus, advisories: list[str],
            provenance: Provenance, tcb: _Tcb, qe_status: TcbStatus | None) -> SgxClaims | TdxClaims:
    ppid = ext.ppid if ext.ppid is not None else (
        q.certification_data.ppid_info.ppid if q.certification_data.ppid_info is not None else None)
    common: dict[str, Any] = {
        "tcb_status": status, "advisory_ids": tuple(advisories), "provenance": provenance,
        "fmspc": ext.fmspc, "pce_id": ext.pce_id, "pck_tcb_components": tuple(ext.tcb_components), "pck_pcesvn": ext.pcesvn,
        "pck_cpusvn": ext.cpusvn, "ppid": ppid, "quote_version": q.header.version, "qe_vendor_id": q.header.qe_vendor_id,
        "qe_mrenclave": qe.mrenclave, "qe_mrsigner": qe.mrsigner, "qe_isv_prodid": qe.isv_prod_id, "qe_isv_svn": qe.isv_svn,
        "qe_tcb_status": qe_status, "tcb_date": tcb.level.tcb_date if tcb.level else None,
        "tcb_evaluation_data_number": tcb.info.tcb_evaluation_data_number if tcb.info else None,
    }
    body = q.body
    if isinstance(body, abi.SgxReportBody):
        return SgxClaims(
            report_data=body.report_data, debug=body.debug, pce_svn=q.header.pce_svn, qe_svn=q.header.qe_svn,
            mrenclave=body.mrenclave, mrsigner=body.mrsigner, isv_prodid=body.isv_prod_id, isv_svn=body.isv_svn,
            attributes=body.attributes, misc_select=body.misc_select, report_cpusvn=body.cpusvn, **common)
    # v4/v5 TDX headers leave these fields reserved (zero): report the QE's own SVN and the PCK's PCESVN
    return TdxClaims(
        report_data=body.report_data, debug=body.debug, pce_svn=q.header.pce_svn or ext.pcesvn,
        qe_svn=q.header.qe_svn or qe.isv_svn, mrtd=body.mrtd, rtmrs=tuple(body.rtmrs), mrconfigid=body.mrconfigid,
        mrowner=body.mrowner, mrownerconfig=body.mrownerconfig, mrseam=body.mrseam,
        mrsignerseam=body.mrsignerseam, mrservicetd=body.mrservicetd, td_attributes=body.td_attributes,
        xfam=body.xfam, seam_attributes=body.seam_attributes, tee_tcb_svn=body.tee_tcb_svn,
        tee_tcb_svn2=body.tee_tcb_svn2, td_version="1.5" if body.is_td15 else "1.0",
        tdx_module_tcb_status=tcb.module_status, **common)


# --------------------------------------------------------------------------------------------------
# the PCK certificate


def _pck_certificate(q: abi.Quote, ctx: Context, docs: _Documents) -> tuple[list[Cert], Cert]:
    """The quote's chain (or ``[]``) and the PCK certificate."""
    trail = ctx.trail
    pem = q.certification_data.pem_chain
    if pem is not None:
        try:
            certs = list(ctx.parsed(b"pem-chain", pem, lambda pem: tuple(
                ctx.cert(der) for label, der in split_pem(pem.rstrip(b"\x00 \r\n\t") + b"\n")
                if label == "CERTIFICATE")))
        except CertificateFormatError as exc:
            raise trail.fail("pck-certificate", f"PEM PCK chain in the quote does not parse: {exc}", "parse",
                             MalformedEvidence) from None
        if not certs:
            raise trail.fail("pck-certificate", "the quote's PCK chain holds no certificate", "parse",
                             MalformedEvidence)
        trail.ok("pck-certificate", f"PCK chain of {len(certs)} certificates in the quote")
        return certs, certs[0]
    # certification data types 1..3 (PPID): the PCK certificate must come with the collateral
    info = q.certification_data.ppid_info
    for cert in [*ctx.pool(*docs.certificates)]:
        if not has_sgx_extensions(cert):
            continue
        try:
            ext = pck_extensions(cert)
        except MalformedEvidence:
            continue
        if info is not None and (ext.pcesvn != info.pcesvn or ext.cpusvn != info.cpusvn):
            continue
        if info is not None and info.cert_type == abi.CERT_TYPE_PPID_CLEARTEXT and ext.ppid not in (None, info.ppid):
            continue
        trail.ok("pck-certificate", f"PCK certificate from collateral ({cert.name}) matches the quote's PPID/TCB")
        return [], cert
    raise trail.fail("pck-certificate", f"quote carries certification data type {q.certification_data.cert_type} "
                     "(PPID) and no matching PCK certificate was supplied as collateral", "collateral")


# --------------------------------------------------------------------------------------------------
# signed collateral: TCB info and QE identity


def _freshest(items: list[tuple[Any, bool]], what: str, ctx: Context) -> Any:
    """The newest item (evaluation data number, then issue date); a supplied one older than the newest the
    store holds is refused."""
    best = max((i for i, _ in items), key=recency)
    held = [i for i, from_store in items if from_store]
    if held:
        newest_held = max(held, key=recency)
        stale = [i for i, from_store in items if not from_store and recency(i) < recency(newest_held)]
        if stale:
            raise ctx.trail.fail(f"{what}-freshness", f"{stale[0].name} (evaluation data number "
                                 f"{stale[0].tcb_evaluation_data_number}, issued {stale[0].issue_date.isoformat()}) "
                                 "is older than the one this verifier holds "
                                 f"({newest_held.tcb_evaluation_data_number}, {newest_held.issue_date.isoformat()})",
                                 "stale-collateral")
    return best


def _signed_collateral(item: TcbInfo | EnclaveIdentity, pool: list[Cert], crls: list[CrlItem],
                       pck_chain: ChainResult, ctx: Context, name: str) -> ChainResult:
    """Find the certificate whose key verifies ``item``'s signature and chain it to the PCK's root."""
    trail = ctx.trail
    # Certificates that may sign collateral (end entity, no SGX extensions) first; the others after them,
    # so that a PCK or CA key that signed it is still found and refused below.
    ordered = sorted(pool, key=lambda c: c.is_ca or has_sgx_extensions(c))  # stable: eligible signers first
    signer = next((c for c in ordered if ctx.signed(
        b"intel-json", c, item.signed.digest,
        lambda c=c: crypto.verify_raw_ecdsa(c.public_key, crypto.ECDSA_SHA256, item.signed.raw,
                                            item.signed.signature))), None)
    if signer is None:
        raise trail.fail(f"{name}-signature", f"{item.name}: signature does not verify with any supplied Intel "
                         "TCB signing certificate", "signature")
    trail.ok(f"{name}-signature", f"{item.name} signed by {signer.name}")
    chain = ctx.chain(signer, CrlScope.ALL, name=f"{name}-chain", pool=pool, crls=crls)
    if len(chain.path) != 2 or signer.is_ca or has_sgx_extensions(signer):
        # Only the TCB signing certificate, issued directly by the root, may sign collateral: a PCK key (held by
        # the platform itself) or an intermediate CA must not be able to vouch for a TCB level.
        raise trail.fail(f"{name}-chain", f"{item.name} is signed by {signer.name}, which is not a TCB signing "
                         "certificate issued directly by the root", "chain")
    if chain.anchor.cert.spki != pck_chain.anchor.cert.spki:
        raise trail.fail(f"{name}-chain", f"{item.name} chains to {chain.anchor.describe()}, not to the root of the "
                         f"PCK certificate ({pck_chain.anchor.describe()})", "untrusted-root")
    window(ctx, f"{name}-validity", item.name, item.issue_date, item.next_update)
    return chain


def window(ctx: Context, name: str, what: str, not_before: Any, not_after: Any) -> None:
    if ctx.at > not_after:
        raise ctx.trail.fail(name, f"{what} expired at {_iso(not_after)} (evaluated at {_iso(ctx.at)})", "expired")
    if ctx.at < not_before:
        raise ctx.trail.fail(name, f"{what} is not valid before {_iso(not_before)} (evaluated at {_iso(ctx.at)})",
                             "not-yet-valid")
    ctx.trail.ok(name, f"{what} current at the verification time")


@dataclass
class _Tcb:
    status: TcbStatus
    advisories: list[str]
    info: TcbInfo | None = None
    level: TcbLevel | None = None
    chain: ChainResult | None = None
    module_status: TcbStatus | None = None

    @property
    def expiry(self) -> Any:
        return self.info.next_update if self.info else None


def _tcb(q: abi.Quote, ext: PckExtensions, tee_tcb_svn: bytes | None, docs: _Documents, pool: list[Cert],
         pck_chain: ChainResult, ctx: Context) -> _Tcb:
    trail = ctx.trail
    kind = "TDX" if q.is_tdx else "SGX"
    matching = [(t, s) for t, s in docs.tcb_infos if t.id == kind and t.fmspc == ext.fmspc]
    if not matching:
        found = ", ".join(f"{t.id} {t.fmspc.hex()}" for t, _ in docs.tcb_infos)
        trail.warn(f"no {kind} TCB info for FMSPC {ext.fmspc.hex()}" + (f" (supplied: {found})" if found else "")
                   + ": the platform's TCB status is unknown")
        trail.ok("tcb-info", f"no {kind} TCB info for FMSPC {ext.fmspc.hex()}: TCB status Unknown")
        return _Tcb(TcbStatus.UNKNOWN, [])
    info: TcbInfo = _freshest(matching, "tcb-info", ctx)
    chain = _signed_collateral(info, pool, docs.crls, pck_chain, ctx, "tcb-info")
    trail.ok("tcb-info-fmspc", f"FMSPC {ext.fmspc.hex()} matches {info.name}")
    if info.pce_id != ext.pce_id:
        raise trail.fail("tcb-info-pce-id", f"PCE-ID {ext.pce_id.hex()} of the PCK does not match {info.pce_id.hex()}",
                         "collateral", expected=info.pce_id.hex(), actual=ext.pce_id.hex())
    trail.ok("tcb-info-pce-id", f"PCE-ID {ext.pce_id.hex()}")
    if info.tcb_type != 0:
        raise trail.fail("tcb-info", f"{info.name}: unsupported tcbType {info.tcb_type}", "collateral")
    level = match_tcb_level(info, ext.tcb_components, ext.pcesvn, tee_tcb_svn)
    if level is None:
        trail.checks.append(_no_level(f"no TCB level of {info.name} matches the platform (SGX components "
                                      f"{list(ext.tcb_components)}, PCESVN {ext.pcesvn}"
                                      + (f", TEE_TCB_SVN {tee_tcb_svn.hex()}" if tee_tcb_svn else "") + ")"))
        return _Tcb(TcbStatus.NOT_SUPPORTED, [], info, None, chain)
    out = _Tcb(level.status, list(level.advisory_ids), info, level, chain)
    trail.ok("tcb-level", f"{level.status.value} (tcbDate {level.tcb_date.date() if level.tcb_date else '?'})"
             + (f", advisories {', '.join(level.advisory_ids)}" if level.advisory_ids else ""))
    if q.is_tdx and tee_tcb_svn is not None and isinstance(q.body, abi.TdReportBody) and info.tdx_module is not None:
        module = _tdx_module(q.body, info, ctx)
        if module is None:
            return _Tcb(TcbStatus.NOT_SUPPORTED, [], info, level, chain)
        out.module_status = module[0]
        out.status, out.advisories = _converge(out.status, out.advisories, module[0], list(module[1]))
    return out


def _no_level(detail: str, name: str = "tcb-level") -> Check:
    """A failed check that is not an error: no TCB level applies, so the status is TcbNotSupported."""
    return Check(name, False, detail + ": tcb-no-level")


def match_tcb_level(info: TcbInfo, components: tuple[int, ...], pcesvn: int,
                    tee_tcb_svn: bytes | None) -> TcbLevel | None:
    """Intel's algorithm: the first level (in the order given) that the platform meets or exceeds."""
    for level in info.levels:
        if any(have < need for have, need in zip(components, level.sgx_components)):
            continue
        if pcesvn < level.pcesvn:
            continue
        if info.id == "TDX":
            if tee_tcb_svn is None or level.tdx_components is None:
                continue
            # With a TDX module version (TEE_TCB_SVN[1] > 0) the module's own SVN bytes are judged by
            # tdxModuleIdentities instead, so the comparison starts at index 2.
            start = 2 if info.version >= 3 and tee_tcb_svn[1] > 0 else 0
            if any(tee_tcb_svn[i] < level.tdx_components[i] for i in range(start, 16)):
                continue
        return level
    return None


def _tdx_module(body: abi.TdReportBody, info: TcbInfo, ctx: Context) -> tuple[TcbStatus, tuple[str, ...]] | None:
    trail = ctx.trail
    isvsvn, version = body.tee_tcb_svn[0], body.tee_tcb_svn[1]
    identity = info.tdx_module
    levels: tuple[IsvLevel, ...] = ()
    if version != 0 and info.tdx_module_identities:
        wanted = f"TDX_{version:02d}"
        found = [m for m in info.tdx_module_identities if m.id.upper() == wanted]
        if not found:
            trail.checks.append(_no_level(f"{info.name} has no TDX module identity {wanted}", "tdx-module"))
            return None
        identity, levels = found[0], found[0].levels
    assert identity is not None
    if body.mrsignerseam != identity.mrsigner:
        raise trail.fail("tdx-module", f"MRSIGNERSEAM does not match TDX module identity {identity.id}", "collateral",
                         expected=identity.mrsigner.hex(), actual=body.mrsignerseam.hex())
    mask = identity.attributes_mask
    if _masked(body.seam_attributes, mask) != _masked(identity.attributes, mask):
        raise trail.fail("tdx-module", f"SEAM attributes do not match TDX module identity {identity.id}",
                         "collateral", expected=identity.attributes.hex(), actual=body.seam_attributes.hex())
    if not levels:
        trail.ok("tdx-module", f"TDX module {identity.id} (version {version}) matches")
        return TcbStatus.UP_TO_DATE, ()
    for lv in levels:
        if isvsvn >= lv.isvsvn:
            trail.ok("tdx-module", f"TDX module {identity.id} SVN {isvsvn}: {lv.status.value}")
            return lv.status, lv.advisory_ids
    trail.checks.append(_no_level(f"TDX module {identity.id} SVN {isvsvn} is below every level", "tdx-module"))
    return None


def _converge(platform: TcbStatus, advisories: list[str], other: TcbStatus,
              other_advisories: list[str] | tuple[str, ...]) -> tuple[TcbStatus, list[str]]:
    """Combine the platform status with the QE's or TDX module's (Intel QVL's convergence rules)."""
    merged = list(advisories) + [a for a in other_advisories if a not in advisories]
    if other == TcbStatus.REVOKED:
        return TcbStatus.REVOKED, merged
    if other in (TcbStatus.OUT_OF_DATE, TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED):
        if platform in _GOOD:
            return TcbStatus.OUT_OF_DATE, merged
        if platform in _CONFIG:
            return TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED, merged
    return platform, merged


# --------------------------------------------------------------------------------------------------
# QE identity


def _qe_identity(q: abi.Quote, qe: abi.SgxReportBody, docs: _Documents, pool: list[Cert], pck_chain: ChainResult,
                 ctx: Context) -> tuple[TcbStatus, list[str], ChainResult, Any] | None:
    trail = ctx.trail
    wanted = "TD_QE" if q.is_tdx else "QE"
    found = [(i, s) for i, s in docs.qe_identities if i.id == wanted]
    if not found:
        have = ", ".join(i.id for i, _ in docs.qe_identities)
        trail.warn(f"no {wanted} identity supplied" + (f" (supplied: {have})" if have else "")
                   + ": the quoting enclave's identity was not checked")
        return None
    ident: EnclaveIdentity = _freshest(found, "qe-identity", ctx)
    chain = _signed_collateral(ident, pool, docs.crls, pck_chain, ctx, "qe-identity")
    problems = []
    if qe.mrsigner != ident.mrsigner:
        problems.append(f"MRSIGNER {qe.mrsigner.hex()} != {ident.mrsigner.hex()}")
    if qe.isv_prod_id != ident.isvprodid:
        problems.append(f"ISVPRODID {qe.isv_prod_id} != {ident.isvprodid}")
    if _masked(qe.raw[16:20], ident.miscselect_mask) != _masked(ident.miscselect, ident.miscselect_mask):
        problems.append("masked MISCSELECT differs")
    if _masked(qe.attributes, ident.attributes_mask) != _masked(ident.attributes, ident.attributes_mask):
        problems.append("masked ATTRIBUTES differ")
    if problems:
        raise trail.fail("qe-identity", f"quoting enclave does not match {ident.name}: " + "; ".join(problems),
                         "collateral")
    for lv in ident.levels:
        if qe.isv_svn >= lv.isvsvn:
            trail.ok("qe-identity", f"QE ISVSVN {qe.isv_svn}: {lv.status.value}")
            return lv.status, list(lv.advisory_ids), chain, ident.next_update
    trail.ok("qe-identity", f"QE ISVSVN {qe.isv_svn} is below every level of {ident.name}: OutOfDate")
    return TcbStatus.OUT_OF_DATE, [], chain, ident.next_update


# --------------------------------------------------------------------------------------------------
# helpers


def _masked(value: bytes, mask: bytes) -> int:
    n = min(len(value), len(mask))
    return int.from_bytes(value[:n], "big") & int.from_bytes(mask[:n], "big")


def _iso(when: Any) -> str:
    from datetime import UTC

    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
