"""Is an Intel DCAP quote genuine and current? Signatures, chains to a trust anchor, CRLs, TCB levels.

:func:`verify_quote` never decides whether a genuine quote is *acceptable*: it reports the TCB status,
advisories and the debug bit in the claims and leaves the verdict to the policy stage. It raises
:class:`VerificationError` (reason ``signature``, ``chain``, ``untrusted-root``, ``revoked``, ``expired``
or ``collateral``) or :class:`MalformedEvidence`; every check performed is attached to the error.

The order follows Intel's quote verification: attestation-key signature → QE report binding → QE report
signature by the PCK → PCK chain to a trusted root (validity, CRLs) → TCB info (signature, chain, FMSPC,
PCE-ID, level matching, TDX module) → QE identity → status convergence.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx.attestation.intel import abi
from enarx.attestation.intel.collateral import (
    EnclaveIdentity,
    IntelCollateral,
    IsvLevel,
    TcbInfo,
    TcbLevel,
    as_certificate,
    from_collateral_set,
    usable_certificate,
)
from enarx.attestation.intel.memo import SIGNATURES, memo_key
from enarx.attestation.intel.pck import PckExtensions, has_sgx_extensions, pck_extensions
from enarx.attestation.model import (
    AttestationError,
    Check,
    Claims,
    CollateralSet,
    MalformedEvidence,
    TcbStatus,
    Tee,
    TrustAnchors,
    VerificationError,
)

# Reason tokens for statuses a default policy refuses (shared vocabulary with corpora/cases.tsv).
TCB_REASONS: dict[TcbStatus, str] = {
    TcbStatus.OUT_OF_DATE: "tcb-outofdate",
    TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED: "tcb-outofdate",
    TcbStatus.CONFIGURATION_NEEDED: "tcb-needs-config",
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: "tcb-needs-config",
    TcbStatus.SW_HARDENING_NEEDED: "tcb-sw-hardening",
    TcbStatus.REVOKED: "tcb-revoked",
    TcbStatus.NOT_SUPPORTED: "tcb-no-level",
    TcbStatus.UNKNOWN: "tcb-unknown",
}


def tcb_reason(status: TcbStatus) -> str | None:
    """The reason token for a non-UpToDate TCB status (``None`` for UpToDate)."""
    return TCB_REASONS.get(status)


_CONFIG = {TcbStatus.CONFIGURATION_NEEDED, TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED}
_GOOD = {TcbStatus.UP_TO_DATE, TcbStatus.SW_HARDENING_NEEDED}


@dataclass
class _Run:
    """Accumulates checks, warnings and the earliest expiry while verification proceeds."""

    at: datetime
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    expiry: datetime | None = None
    used_extra: bool = False
    crls_used: int = 0
    crls_missing: int = 0
    # signature keys (see :mod:`memo`) verified during this call: each link / CRL is checked once per call
    verified: set[bytes] = field(default_factory=set)
    # ... and those that failed during this call (never kept beyond it: see :mod:`memo`)
    refused: set[bytes] = field(default_factory=set)
    _crls: dict[int, tuple[Any, bytes, bytes]] = field(default_factory=dict)

    def signature(self, key: bytes, verify: Any) -> bool:
        """Whether the pure signature check named by ``key`` holds: memoized across calls on success only;
        within this call a check is performed at most once."""
        if key in self.verified:
            return True
        if key in self.refused:
            return False
        if SIGNATURES.verified(key, verify):
            self.verified.add(key)
            return True
        self.refused.add(key)
        return False

    def crl_facts(self, crl: x509.CertificateRevocationList) -> tuple[bytes, bytes]:
        """(SHA-256 of the DER, encoded issuer name) of ``crl``. CRL objects are unhashable: remembered by
        identity for this call only (the CRL is held here too, so its id cannot be reused meanwhile)."""
        hit = self._crls.get(id(crl))
        if hit is None or hit[0] is not crl:
            hit = (crl, hashlib.sha256(crl.public_bytes(serialization.Encoding.DER)).digest(),
                   crl.issuer.public_bytes())
            self._crls[id(crl)] = hit
        return hit[1], hit[2]

    def ok(self, name: str, detail: str = "", **kw: Any) -> None:
        self.checks.append(Check(name, True, detail, **kw))

    def fail(self, name: str, detail: str, reason: str, exc: type[AttestationError] = VerificationError,
             **kw: Any) -> AttestationError:
        self.checks.append(Check(name, False, detail, **kw))
        return exc(f"{name}: {detail}", reason=reason, checks=self.checks)

    def expires(self, when: datetime) -> None:
        if self.expiry is None or when < self.expiry:
            self.expiry = when

    def window(self, name: str, what: str, not_before: datetime, not_after: datetime) -> None:
        """Validity of one item at ``at``; an item outside its window is reason ``expired``."""
        if self.at > not_after:
            raise self.fail(name, f"{what} expired at {_iso(not_after)} (evaluated at {_iso(self.at)})", "expired")
        if self.at < not_before:
            raise self.fail(name, f"{what} is not valid before {_iso(not_before)} (evaluated at {_iso(self.at)})",
                            "expired")
        self.expires(not_after)


def verify_quote(
    quote: bytes, collateral: CollateralSet | None, at: datetime, anchors: TrustAnchors
) -> tuple[Claims, list[Check], list[str]]:
    """Verify a DCAP ECDSA quote (SGX v3, TDX v4/v5) as of ``at`` against ``anchors``.

    Returns the claims, every check performed (in order) and warnings. Without TCB collateral the
    claims carry :attr:`TcbStatus.UNKNOWN`; without a matching TCB level, :attr:`TcbStatus.NOT_SUPPORTED`.
    """
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    run = _Run(at)
    q = abi.parse_quote(quote)
    body = q.body
    run.ok("quote-format", f"v{q.header.version} {'TDX' if q.is_tdx else 'SGX'} quote, {q.length} bytes"
           + (f" + {len(quote) - q.length} trailing bytes ignored" if len(quote) > q.length else ""))
    if q.header.qe_vendor_id != abi.INTEL_QE_VENDOR_ID:
        run.warnings.append(f"QE vendor id {q.header.qe_vendor_id.hex()} is not Intel's")

    intel = from_collateral_set(collateral)
    anchor_list = _anchor_certs(anchors)
    if not anchor_list:
        raise run.fail("trust-anchor", "no trust anchor supplied for Intel SGX/TDX", "untrusted-root")

    # 1. attestation key signs header + body
    try:
        att_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + q.attestation_key)
    except ValueError:
        raise run.fail("attestation-key-signature", "attestation key is not a P-256 point", "signature") from None
    if not _ecdsa_ok(att_key, q.signature, q.signed_region):
        raise run.fail("attestation-key-signature", "quote signature over header+body does not verify", "signature")
    run.ok("attestation-key-signature", "ECDSA-P256 over header and report body")

    # 2. the QE binds the attestation key (and its auth data) in its report data
    qe_report = q.qe.qe_report_body
    expected = hashlib.sha256(q.attestation_key + q.qe.qe_auth_data).digest()
    if qe_report.report_data[:32] != expected or any(qe_report.report_data[32:]):
        raise run.fail("qe-report-binding", "QE report_data does not hold SHA-256(attestation key || QE auth data)",
                       "signature", expected=expected.hex(), actual=qe_report.report_data[:32].hex())
    run.ok("qe-report-binding", "QE report_data[0:32] == SHA-256(attestation key || QE auth data)")

    # 3. the PCK signs the QE report
    quote_certs, pck, qe_report_verified = _pck_certificate(q, intel, run)
    if not qe_report_verified and not _ecdsa_ok(_public_key(pck), q.qe.qe_report_signature, q.qe.qe_report):
        raise run.fail("qe-report-signature", "QE report signature does not verify with the PCK certificate",
                       "signature")
    run.ok("qe-report-signature", f"QE report signed by {_name(pck)}")

    # 4. PCK → intermediate CA → trusted root, each valid at `at`, none revoked
    pool = _distinct(quote_certs + intel.certificates)
    pck_chain, root = _chain(pck, pool, anchor_list, anchors, run, "pck-chain")
    if len(pck_chain) != 3 or _is_ca(pck):
        # Intel's PKI: PCK (end entity) ← PCK Platform/Processor CA ← root, nothing else
        raise run.fail("pck-chain", f"{_name(pck)} is not an end-entity certificate issued by an intermediate "
                       "PCK CA under the root", "chain")
    _revocation(pck_chain, intel.crls, run, "pck-revocation")
    try:
        ext = _pck_extensions(pck)
    except MalformedEvidence as exc:
        raise run.fail("pck-extensions", str(exc), "parse", MalformedEvidence) from None
    run.ok("pck-extensions", f"FMSPC {ext.fmspc.hex()}, PCE-ID {ext.pce_id.hex()}, PCESVN {ext.pcesvn}")
    ppid = q.certification_data.ppid_info
    if ppid is not None and ppid.pce_id is not None and ppid.pce_id != ext.pce_id:
        raise run.fail("pck-identity", "PCE-ID in the quote does not match the PCK certificate", "collateral")

    # 5. TCB info → platform TCB status
    tee_tcb_svn = body.tee_tcb_svn if isinstance(body, abi.TdReportBody) else None
    tcb_status, advisories, tcb_extra = _tcb(q, ext, tee_tcb_svn, intel, pool, anchor_list, anchors, root, run)

    # 6. QE identity → converge with the QE's own TCB status
    qe_status = _qe_identity(q, qe_report, intel, pool, anchor_list, anchors, root, run)
    if qe_status is not None and tcb_status not in (TcbStatus.UNKNOWN, TcbStatus.NOT_SUPPORTED):
        tcb_status, advisories = _converge(tcb_status, advisories, qe_status[0], qe_status[1])
        tcb_extra["qe_tcb_status"] = qe_status[0].value

    if run.used_extra:
        run.warnings.append("the chain ends at an extra trust anchor (e.g. --trust-anchor), not a built-in "
                            "Intel root: this proves nothing about real hardware")
    claims = _claims(q, ext, tcb_status, advisories, run, tcb_extra)
    return claims, run.checks, run.warnings


# --------------------------------------------------------------------------------------------------
# claims


def _claims(q: abi.Quote, ext: PckExtensions, status: TcbStatus, advisories: list[str], run: _Run,
            extra: dict[str, Any]) -> Claims:
    platform: dict[str, Any] = {
        "fmspc": ext.fmspc.hex(),
        "pce_id": ext.pce_id.hex(),
        "tcb_components": list(ext.tcb_components),
        "cpusvn": ext.cpusvn.hex(),
        "pck_pcesvn": ext.pcesvn,
        "quote_version": q.header.version,
        "qe_vendor_id": q.header.qe_vendor_id.hex(),
    }
    if ext.ppid is not None:
        platform["ppid"] = ext.ppid.hex()
    elif q.certification_data.ppid_info is not None:
        platform["ppid"] = q.certification_data.ppid_info.ppid.hex()
    qe = q.qe.qe_report_body
    if q.is_tdx:
        # v4/v5 TDX headers leave these fields reserved (zero): report the QE's own SVN and the PCK's PCESVN
        svns = {"pce_svn": q.header.pce_svn or ext.pcesvn, "qe_svn": q.header.qe_svn or qe.isv_svn}
    else:
        svns = {"pce_svn": q.header.pce_svn, "qe_svn": q.header.qe_svn}
    extra = dict(extra)
    extra["qe"] = {"mrenclave": qe.mrenclave.hex(), "mrsigner": qe.mrsigner.hex(), "isv_prod_id": qe.isv_prod_id,
                   "isv_svn": qe.isv_svn}
    body = q.body
    if isinstance(body, abi.SgxReportBody):
        claims = Claims(
            tee=Tee.SGX,
            measurements={"mrenclave": body.mrenclave.hex()},
            signer={"mrsigner": body.mrsigner.hex()},
            debug=body.debug,
            report_data=body.report_data,
        )
        svns.update(isv_svn=body.isv_svn, isv_prodid=body.isv_prod_id)
        platform.update(attributes=body.attributes.hex(), misc_select=body.misc_select,
                        cpusvn_report=body.cpusvn.hex(), xfrm=body.xfrm)
    else:
        measurements = {
            "mrtd": body.mrtd.hex(),
            **{f"rtmr{i}": r.hex() for i, r in enumerate(body.rtmrs)},
            "mrconfigid": body.mrconfigid.hex(),
            "mrowner": body.mrowner.hex(),
            "mrownerconfig": body.mrownerconfig.hex(),
            "mrseam": body.mrseam.hex(),
        }
        if body.mrservicetd is not None:
            measurements["mrservicetd"] = body.mrservicetd.hex()
        claims = Claims(
            tee=Tee.TDX,
            measurements=measurements,
            signer={"mrsignerseam": body.mrsignerseam.hex()},
            debug=body.debug,
            report_data=body.report_data,
        )
        svns.update(tdx_module_svn=body.tee_tcb_svn[0], tdx_module_version=body.tee_tcb_svn[1])
        platform.update(
            tee_tcb_svn=body.tee_tcb_svn.hex(),
            td_attributes=body.td_attributes.hex(),
            xfam=body.xfam.hex(),
            seam_attributes=body.seam_attributes.hex(),
            td_version="1.5" if body.is_td15 else "1.0",
        )
        if body.tee_tcb_svn2 is not None:
            platform["tee_tcb_svn2"] = body.tee_tcb_svn2.hex()
    claims.svns = svns
    claims.platform = platform
    claims.tcb_status = status
    claims.advisory_ids = advisories
    claims.collateral_expiry = run.expiry
    platform["test_anchor"] = run.used_extra
    platform["crl_checked"] = run.crls_used > 0 and run.crls_missing == 0
    claims.extra = extra
    return claims


# --------------------------------------------------------------------------------------------------
# PCK certificate and chains


def _pck_certificate(q: abi.Quote, intel: IntelCollateral,
                     run: _Run) -> tuple[list[x509.Certificate], x509.Certificate, bool]:
    """The quote's chain (or ``[]``), the PCK certificate, and whether the QE report signature was
    already verified with it here (so that the caller does not verify it a second time)."""
    pem = q.certification_data.pem_chain
    if pem is not None:
        try:
            certs = list(_load_pem_chain(pem.rstrip(b"\x00 \r\n\t") + b"\n"))
        except ValueError as exc:
            raise run.fail("pck-certificate", f"PEM PCK chain in the quote does not parse: {exc}", "parse",
                           MalformedEvidence) from None
        if not all(usable_certificate(c) for c in certs):
            raise run.fail("pck-certificate", "malformed certificate in the quote's PCK chain", "parse",
                           MalformedEvidence)
        run.ok("pck-certificate", f"PCK chain of {len(certs)} certificates in the quote")
        return certs, certs[0], False
    # certification data types 1..3 (PPID): the PCK certificate must come with the collateral
    info = q.certification_data.ppid_info
    candidates = [c for c in intel.certificates if has_sgx_extensions(c)]
    matching = []
    for cert in candidates:
        try:
            ext = _pck_extensions(cert)
        except MalformedEvidence:
            continue
        if info is not None and (ext.pcesvn != info.pcesvn or ext.cpusvn != info.cpusvn):
            continue
        if info is not None and info.pce_id is not None and ext.pce_id != info.pce_id:
            continue
        if info is not None and info.cert_type == abi.CERT_TYPE_PPID_CLEARTEXT and ext.ppid not in (None, info.ppid):
            continue
        matching.append(cert)
    for cert in matching:
        if _ecdsa_ok(_public_key(cert), q.qe.qe_report_signature, q.qe.qe_report):
            run.ok("pck-certificate", f"PCK certificate from collateral ({_name(cert)}) matches the quote's PPID/TCB")
            return [], cert, True
    if matching:
        return [], matching[0], False  # let the signature check report the failure
    raise run.fail("pck-certificate", f"quote carries certification data type {q.certification_data.cert_type} "
                   "(PPID) and no matching PCK certificate was supplied as collateral", "collateral")


def _anchor_certs(anchors: TrustAnchors) -> list[tuple[x509.Certificate, bool]]:
    out = []
    for extra, items in ((False, anchors.builtin), (True, anchors.extra)):
        for item in items or []:
            cert = as_certificate(item)
            if cert is not None:
                out.append((cert, extra))
    return out


def _public_key(cert: x509.Certificate) -> Any:
    try:
        return cert.public_key()
    except (ValueError, TypeError):  # an algorithm cryptography cannot load: never a match
        return None


@dataclass(frozen=True)
class _Facts:
    """What verification reads from a certificate, computed once per distinct certificate (pure
    functions of its DER: no time, no trust decision)."""

    digest: bytes  # SHA-256 of the DER
    subject: bytes  # the subject and issuer names as encoded by ``Name.public_bytes`` (equal exactly when
    issuer: bytes  # the ``x509.Name`` objects compare equal), for cheap comparisons
    spki: bytes | None  # DER SubjectPublicKeyInfo, None when the key cannot be loaded
    name: str
    is_ca: bool
    sgx: bool


_FACTS_BY_ID: dict[int, tuple[x509.Certificate, _Facts]] = {}
_FACTS_BY_ID_MAX = 4096


def _facts(cert: x509.Certificate) -> _Facts:
    """The facts of ``cert``: first by object identity (the entry holds the object, so its id cannot be
    reused while the entry exists), then by DER (hashing a certificate costs microseconds)."""
    hit = _FACTS_BY_ID.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    facts = _facts_of(cert)
    if len(_FACTS_BY_ID) >= _FACTS_BY_ID_MAX:
        _FACTS_BY_ID.clear()
    _FACTS_BY_ID[id(cert)] = (cert, facts)
    return facts


@functools.lru_cache(maxsize=1024)
def _facts_of(cert: x509.Certificate) -> _Facts:
    # x509.Certificate hashes and compares by its DER, so equal certificates share one entry
    key = _public_key(cert)
    spki = None
    if key is not None:
        spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = names[0].value if names else cert.subject.rfc4514_string()
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    return _Facts(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest(), cert.subject.public_bytes(),
                  cert.issuer.public_bytes(), spki, f"'{cn}'", is_ca, has_sgx_extensions(cert))


@functools.lru_cache(maxsize=256)
def _pck_extensions(cert: x509.Certificate) -> PckExtensions:
    return pck_extensions(cert)  # a MalformedEvidence is raised (and never cached) every time


@functools.lru_cache(maxsize=256)
def _load_pem_chain(pem: bytes) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(pem))  # a ValueError is raised (and never cached) every time


def _distinct(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """``certs`` without repeats (same DER), in their order."""
    seen: set[bytes] = set()
    out = []
    for cert in certs:
        digest = _facts(cert).digest
        if digest not in seen:
            seen.add(digest)
            out.append(cert)
    return out


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    ka, kb = _facts(a).spki, _facts(b).spki
    return ka is not None and ka == kb


def _directly_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate, run: _Run) -> bool:
    """``cert`` names ``issuer`` as its issuer and carries a valid signature by ``issuer``'s key.

    A pure function of the two DER encodings, so a success is memoized under both digests."""
    if _facts(cert).issuer != _facts(issuer).subject:  # verify_directly_issued_by refuses this too
        return False
    return run.signature(memo_key(b"x509-issued-by", _facts(cert).digest, _facts(issuer).digest),
                         lambda: _directly_issued(cert, issuer))


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate, run: _Run) -> bool:
    def verify() -> bool:
        key = _public_key(issuer)
        return key is not None and crl.is_signature_valid(key)

    return run.signature(memo_key(b"crl-signed-by", run.crl_facts(crl)[0], _facts(issuer).digest), verify)


def _collateral_signed_by(item: TcbInfo | EnclaveIdentity, cert: x509.Certificate, run: _Run) -> bool:
    """``item``'s r||s signature over its exact JSON bytes verifies with ``cert``'s key."""
    return run.signature(memo_key(b"intel-json-signed-by", item.signed.raw, item.signed.signature,
                                  _facts(cert).digest),
                         lambda: _ecdsa_ok(_public_key(cert), item.signed.signature, item.signed.raw))


def _chain(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    anchor_list: list[tuple[x509.Certificate, bool]],
    anchors: TrustAnchors,
    run: _Run,
    name: str,
) -> tuple[list[x509.Certificate], x509.Certificate]:
    """Build leaf → … → anchor. Only ``anchor_list`` ends a chain; a self-signed root found in the
    quote or the collateral is reported as ``untrusted-root``."""
    chain = [leaf]
    cur = leaf
    for _ in range(8):
        run.window(name, f"certificate {_name(cur)}", cur.not_valid_before_utc, cur.not_valid_after_utc)
        for anchor, extra in anchor_list:
            if _facts(cur).subject == _facts(anchor).subject and _same_key(cur, anchor):
                # the chain shipped the anchor itself
                run.used_extra |= extra
                run.ok(name, " → ".join(_name(c) for c in chain) + (" (extra trust anchor)" if extra else ""))
                return chain, anchor
        for anchor, extra in anchor_list:
            if _signed_by(cur, anchor, run):
                run.window(name, f"trust anchor {_name(anchor)}", anchor.not_valid_before_utc,
                           anchor.not_valid_after_utc)
                run.used_extra |= extra
                chain.append(anchor)
                run.ok(name, " → ".join(_name(c) for c in chain) + (" (extra trust anchor)" if extra else ""))
                return chain, anchor
        if _facts(cur).issuer == _facts(cur).subject and _signed_by(cur, cur, run):
            raise run.fail(name, f"chain ends at {_name(cur)}, a root that is not a trusted anchor "
                           "(it arrived with the quote or collateral)", "untrusted-root")
        issuers = [c for c in pool if _facts(c).subject == _facts(cur).issuer and c not in chain]
        nxt = next((c for c in issuers if _signed_by(cur, c, run)), None)
        if nxt is None:
            named_anchor = [a for a, _ in anchor_list if _facts(a).subject == _facts(cur).issuer]
            if named_anchor and not issuers:
                raise run.fail(name, f"{_name(cur)} claims issuer {_name(named_anchor[0], issuer=False)} but is not "
                               "signed by the trusted root of that name", "untrusted-root")
            if issuers or named_anchor:
                raise run.fail(name, f"signature of {_name(cur)} does not verify with its issuer", "chain")
            raise run.fail(name, f"issuer {cur.issuer.rfc4514_string()} of {_name(cur)} not found in the quote, "
                           "collateral or trust anchors", "chain")
        if nxt is not leaf and not _is_ca(nxt):
            raise run.fail(name, f"{_name(nxt)} is not a CA certificate", "chain")
        chain.append(nxt)
        cur = nxt
    raise run.fail(name, "certificate chain too long", "chain")


def _is_ca(cert: x509.Certificate) -> bool:
    return _facts(cert).is_ca


def _revocation(chain: list[x509.Certificate], crls: list[x509.CertificateRevocationList], run: _Run,
                name: str) -> None:
    """Check every non-root certificate of ``chain`` against a CRL from its issuer, when one was supplied."""
    for cert, issuer in itertools.pairwise(chain):
        matching = [crl for crl in crls if run.crl_facts(crl)[1] == _facts(issuer).subject]
        if not matching:
            run.crls_missing += 1
            run.warnings.append(f"no CRL from {_name(issuer)} was supplied: revocation of {_name(cert)} "
                                "was not checked")
            continue
        checked = False
        for crl in matching:
            if not _crl_signed_by(crl, issuer, run):
                raise run.fail(name, f"CRL issued by {_name(issuer)} has an invalid signature", "signature")
            next_update = crl.next_update_utc
            if next_update is None:
                raise run.fail(name, f"CRL from {_name(issuer)} has no nextUpdate", "collateral")
            run.window(name, f"CRL from {_name(issuer)}", crl.last_update_utc, next_update)
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None and revoked.revocation_date_utc <= run.at:
                raise run.fail(name, f"{_name(cert)} (serial {cert.serial_number:x}) is revoked by the CRL of "
                               f"{_name(issuer)} since {_iso(revoked.revocation_date_utc)}", "revoked")
            checked = True
            run.crls_used += 1
        if checked:
            run.ok(name, f"{_name(cert)} not revoked by {_name(issuer)}")


# --------------------------------------------------------------------------------------------------
# TCB info


def _signed_collateral_chain(
    item: TcbInfo | EnclaveIdentity, pool: list[x509.Certificate], anchor_list: list[tuple[x509.Certificate, bool]],
    anchors: TrustAnchors, root: x509.Certificate, intel: IntelCollateral, run: _Run, name: str,
) -> None:
    """Find the certificate whose key verifies ``item``'s signature and chain it to the PCK's root."""
    # Try the certificates that may sign collateral (end entity, no SGX extensions) first; the others
    # are tried after them so that a PCK or CA key that signed it is still found and refused below.
    eligible = [c for c in pool if not _is_ca(c) and not _facts(c).sgx]
    ordered = eligible + [c for c in pool if c not in eligible]
    signer = next((c for c in ordered if _collateral_signed_by(item, c, run)), None)
    if signer is None:
        raise run.fail(f"{name}-signature", f"{item.name}: signature does not verify with any supplied "
                       "Intel TCB signing certificate", "signature")
    run.ok(f"{name}-signature", f"{item.name} signed by {_name(signer)}")
    chain, signer_root = _chain(signer, pool, anchor_list, anchors, run, f"{name}-chain")
    if len(chain) != 2 or _is_ca(signer) or _facts(signer).sgx:
        # Only the TCB signing certificate, issued directly by the root, may sign collateral: a PCK key
        # (held by the platform itself) or an intermediate CA must not be able to vouch for a TCB level.
        raise run.fail(f"{name}-chain", f"{item.name} is signed by {_name(signer)}, which is not a TCB signing "
                       "certificate issued directly by the root", "chain")
    if not _same_key(signer_root, root):
        raise run.fail(f"{name}-chain", f"{item.name} chains to {_name(signer_root)}, not to the PCK's root",
                       "chain")
    _revocation(chain, intel.crls, run, f"{name}-revocation")
    run.window(f"{name}-validity", item.name, item.issue_date, item.next_update)
    run.ok(f"{name}-validity", f"{item.name} issued {_iso(item.issue_date)}, next update {_iso(item.next_update)}")


def _tcb(q: abi.Quote, ext: PckExtensions, tee_tcb_svn: bytes | None, intel: IntelCollateral,
         pool: list[x509.Certificate], anchor_list: list[tuple[x509.Certificate, bool]], anchors: TrustAnchors,
         root: x509.Certificate, run: _Run) -> tuple[TcbStatus, list[str], dict[str, Any]]:
    kind = "TDX" if q.is_tdx else "SGX"
    infos = [t for t in intel.tcb_infos if t.id == kind]
    if not intel.tcb_infos:
        run.warnings.append("no TCB info supplied: the platform's TCB status is unknown")
        run.ok("tcb-info", "no TCB info supplied; TCB status Unknown")
        return TcbStatus.UNKNOWN, [], {}
    matching = [t for t in infos if t.fmspc == ext.fmspc]
    if not matching:
        found = ", ".join(f"{t.id} {t.fmspc.hex()}" for t in intel.tcb_infos)
        raise run.fail("tcb-info-fmspc", f"no {kind} TCB info for FMSPC {ext.fmspc.hex()} (supplied: {found})",
                       "collateral", expected=ext.fmspc.hex())
    # Prefer the newest evaluation data among several for the same platform.
    info = max(matching, key=lambda t: (t.tcb_evaluation_data_number or 0, t.issue_date))
    _signed_collateral_chain(info, pool, anchor_list, anchors, root, intel, run, "tcb-info")
    run.ok("tcb-info-fmspc", f"FMSPC {ext.fmspc.hex()} matches {info.name}")
    if info.pce_id != ext.pce_id:
        raise run.fail("tcb-info-pce-id", f"PCE-ID {ext.pce_id.hex()} of the PCK does not match {info.pce_id.hex()}",
                       "collateral", expected=info.pce_id.hex(), actual=ext.pce_id.hex())
    run.ok("tcb-info-pce-id", f"PCE-ID {ext.pce_id.hex()}")
    if info.tcb_type != 0:
        raise run.fail("tcb-info", f"{info.name}: unsupported tcbType {info.tcb_type}", "collateral")
    extra: dict[str, Any] = {"tcb_evaluation_data_number": info.tcb_evaluation_data_number}

    level = match_tcb_level(info, ext.tcb_components, ext.pcesvn, tee_tcb_svn)
    if level is None:
        run.checks.append(Check("tcb-level", False, f"no TCB level of {info.name} matches the platform "
                                f"(SGX components {list(ext.tcb_components)}, PCESVN {ext.pcesvn}"
                                + (f", TEE_TCB_SVN {tee_tcb_svn.hex()}" if tee_tcb_svn else "") + "): tcb-no-level"))
        return TcbStatus.NOT_SUPPORTED, [], extra
    status, advisories = level.status, list(level.advisory_ids)
    extra["tcb_date"] = level.tcb_date.isoformat() if level.tcb_date else None
    run.ok("tcb-level", f"{status.value} (tcbDate {_iso(level.tcb_date) if level.tcb_date else '?'})"
           + (f", advisories {', '.join(advisories)}" if advisories else ""))

    if q.is_tdx and tee_tcb_svn is not None and isinstance(q.body, abi.TdReportBody) and info.tdx_module is not None:
        module = _tdx_module(q.body, info, run)
        if module is None:
            return TcbStatus.NOT_SUPPORTED, [], extra
        extra["tdx_module_tcb_status"] = module[0].value
        status, advisories = _converge(status, advisories, module[0], list(module[1]))
    return status, advisories, extra


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


def _tdx_module(body: abi.TdReportBody, info: TcbInfo, run: _Run) -> tuple[TcbStatus, tuple[str, ...]] | None:
    isvsvn, version = body.tee_tcb_svn[0], body.tee_tcb_svn[1]
    if version == 0:
        identity = info.tdx_module
        levels: tuple[IsvLevel, ...] = ()
    else:
        wanted = f"TDX_{version:02d}"
        found = [m for m in info.tdx_module_identities if m.id.upper() == wanted]
        if not found:
            if not info.tdx_module_identities:
                identity, levels = info.tdx_module, ()
            else:
                run.checks.append(Check("tdx-module", False, f"{info.name} has no TDX module identity {wanted}: "
                                        "tcb-no-level"))
                return None
        else:
            identity, levels = found[0], found[0].levels
    assert identity is not None
    if body.mrsignerseam != identity.mrsigner:
        raise run.fail("tdx-module", f"MRSIGNERSEAM does not match TDX module identity {identity.id}", "collateral",
                       expected=identity.mrsigner.hex(), actual=body.mrsignerseam.hex())
    mask = identity.attributes_mask
    if _masked(body.seam_attributes, mask) != _masked(identity.attributes, mask):
        raise run.fail("tdx-module", f"SEAM attributes do not match TDX module identity {identity.id}", "collateral")
    if not levels:
        run.ok("tdx-module", f"TDX module {identity.id} (version {version}) matches")
        return TcbStatus.UP_TO_DATE, ()
    for lv in levels:
        if isvsvn >= lv.isvsvn:
            run.ok("tdx-module", f"TDX module {identity.id} SVN {isvsvn}: {lv.status.value}")
            return lv.status, lv.advisory_ids
    run.checks.append(Check("tdx-module", False, f"TDX module {identity.id} SVN {isvsvn} is below every level: "
                            "tcb-no-level"))
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


def _qe_identity(q: abi.Quote, qe: abi.SgxReportBody, intel: IntelCollateral, pool: list[x509.Certificate],
                 anchor_list: list[tuple[x509.Certificate, bool]], anchors: TrustAnchors, root: x509.Certificate,
                 run: _Run) -> tuple[TcbStatus, list[str]] | None:
    wanted = "TD_QE" if q.is_tdx else "QE"
    if not intel.qe_identities:
        run.warnings.append(f"no {wanted} identity supplied: the quoting enclave's identity was not checked")
        return None
    found = [i for i in intel.qe_identities if i.id == wanted]
    if not found:
        have = ", ".join(i.id for i in intel.qe_identities)
        raise run.fail("qe-identity", f"no {wanted} identity among the supplied identities ({have})", "collateral")
    ident: EnclaveIdentity = max(found, key=lambda i: (i.tcb_evaluation_data_number or 0, i.issue_date))
    _signed_collateral_chain(ident, pool, anchor_list, anchors, root, intel, run, "qe-identity")
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
        raise run.fail("qe-identity", f"quoting enclave does not match {ident.name}: " + "; ".join(problems),
                       "collateral")
    for lv in ident.levels:
        if qe.isv_svn >= lv.isvsvn:
            run.ok("qe-identity", f"QE ISVSVN {qe.isv_svn}: {lv.status.value}")
            return lv.status, list(lv.advisory_ids)
    run.ok("qe-identity", f"QE ISVSVN {qe.isv_svn} is below every level of {ident.name}: OutOfDate")
    return TcbStatus.OUT_OF_DATE, []


# --------------------------------------------------------------------------------------------------
# helpers


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(a & m for a, m in zip(value, mask))


def _ecdsa_ok(key: Any, raw_sig: bytes, data: bytes) -> bool:
    if len(raw_sig) != 64 or not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    der = encode_dss_signature(int.from_bytes(raw_sig[:32], "big"), int.from_bytes(raw_sig[32:], "big"))
    try:
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def _name(cert: x509.Certificate, issuer: bool = False) -> str:
    return _facts(cert).name


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
