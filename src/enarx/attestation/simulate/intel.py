"""Simulated Intel SGX / TDX evidence: a test Intel PKI, a DCAP quote and its collateral, byte-for-byte in
the real formats, with every field settable.

The test PKI reuses Intel's certificate *names* (``Intel SGX Root CA`` …) with fresh keys, exactly like
Intel's own QVL samples: such evidence verifies only when the returned ``root`` is configured as an extra
trust anchor, and is refused (``untrusted-root``) against the real Intel root. It proves nothing about
hardware; it exists so every branch of :mod:`enarx.attestation.intel.verify` can be exercised.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from enarx.attestation import der
from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.intel import abi
from enarx.attestation.model import CollateralSet, Tee

# Defaults of every simulated platform (what a Steward's collateral must match to certify simulated keeps)
DEFAULT_COMPONENTS = (5, 5, 2, 2, 3, 1, 0, 3) + (0,) * 8
DEFAULT_PCESVN = 13
DEFAULT_FMSPC = {Tee.SGX: bytes.fromhex("00906ed50000"), Tee.TDX: bytes.fromhex("90c06f000000")}
DEFAULT_TEE_TCB_SVN = bytes([3, 1, 2]) + bytes(13)
DEFAULT_QE_ISVSVN = {Tee.SGX: 8, Tee.TDX: 4}
INTEL_QE_MRSIGNER = bytes.fromhex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff")
INTEL_TD_QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
SGX_EXT = "1.2.840.113741.1.13.1"


@dataclass
class SimulatedIntelEvidence:
    """A simulated quote with everything needed to verify it (and ``files`` to write it out)."""

    tee: Tee
    quote: bytes
    collateral: CollateralSet
    root: x509.Certificate  # the test root: trust it only via TrustAnchors.extra
    at: datetime  # an instant inside every validity window
    files: dict[str, bytes] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    pck: x509.Certificate | None = None
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict, repr=False)
    certs: dict[str, x509.Certificate] = field(default_factory=dict, repr=False)

    @property
    def evidence(self) -> bytes:
        return self.quote

    @property
    def anchors(self) -> TrustAnchors:
        """The vendor roots plus this simulation's test root (bound to sgx and tdx by its name and key)."""
        from enarx.attestation import roots

        return roots.builtin_anchors([self.root])


@dataclass
class IntelTestPki:
    """A test Intel hierarchy: root CA → PCK platform CA, and root → TCB signing certificate.

    Made fresh per simulation unless passed as ``pki=`` — a long-lived one (keep simulators, a Steward told
    to trust its root) is created once and kept (see ``enarx.runtime.attest.simulated``).
    """

    root_key: ec.EllipticCurvePrivateKey
    platform_key: ec.EllipticCurvePrivateKey
    tcb_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    platform: x509.Certificate
    tcb: x509.Certificate

    @classmethod
    def create(cls, not_before: datetime, not_after: datetime) -> IntelTestPki:
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        return cls.from_keys(*keys, not_before=not_before, not_after=not_after)

    @classmethod
    def from_keys(cls, root_key: ec.EllipticCurvePrivateKey, platform_key: ec.EllipticCurvePrivateKey,
                  tcb_key: ec.EllipticCurvePrivateKey, *, not_before: datetime, not_after: datetime) -> IntelTestPki:
        root_name = _intel_name("Intel SGX Root CA")
        ca_name = _intel_name("Intel SGX PCK Platform CA")
        root = _cert(root_name, root_name, root_key, root_key, not_before, not_after + timedelta(days=1), ca=True)
        platform = _cert(ca_name, root_name, platform_key, root_key, not_before, not_after, ca=True, path_len=0)
        tcb = _cert(_intel_name("Intel SGX TCB Signing"), root_name, tcb_key, root_key, not_before, not_after,
                    ca=False)
        return cls(root_key, platform_key, tcb_key, root, platform, tcb)


def simulate_sgx(out_dir: str | Path | None = None, **fields: Any) -> SimulatedIntelEvidence:
    """Simulate an SGX v3 quote. Fields (all optional): ``mrenclave``, ``mrsigner``, ``report_data``,
    ``debug``, ``isv_svn``, ``isv_prodid``, ``attributes``, ``misc_select``, ``cpusvn`` and the common
    fields of :func:`_simulate`."""
    return _simulate(Tee.SGX, out_dir, dict(fields))


def simulate_tdx(out_dir: str | Path | None = None, **fields: Any) -> SimulatedIntelEvidence:
    """Simulate a TDX quote (v4 TD 1.0 by default; ``quote_version=5`` with ``td15=True`` for TD 1.5).
    Fields: ``mrtd``, ``rtmrs`` (or ``rtmr0``..``rtmr3``), ``mrconfigid``, ``mrowner``, ``mrownerconfig``,
    ``mrservicetd``, ``report_data``, ``debug``, ``td_attributes``, ``xfam``, ``tee_tcb_svn``,
    ``tee_tcb_svn2``, ``mrseam``, ``mrsignerseam``, ``seam_attributes``, ``tdx_module_status`` and the
    common fields of :func:`_simulate`."""
    return _simulate(Tee.TDX, out_dir, dict(fields))


# --------------------------------------------------------------------------------------------------


def _simulate(tee: Tee, out_dir: str | Path | None, f: dict[str, Any]) -> SimulatedIntelEvidence:
    """Common fields: ``at`` (issue instant), ``qe_svn``, ``pce_svn`` (quote header), ``tcb_components``
    (16 PCK SVNs), ``pcesvn`` (PCK), ``cpusvn``, ``fmspc``, ``pce_id``, ``ppid``, ``tcb_status``,
    ``advisory_ids``, ``tcb_levels`` (list of dicts ``sgx``/``pcesvn``/``tdx``/``status``/``advisories``),
    ``tcb_info_fmspc``, ``tcb_type`` (TCB info's ``tcbType``; Intel defines only 0), ``include_tcb_info``, ``include_qe_identity``, ``include_crls``, ``qe_isvsvn``,
    ``qe_tcb_status``, ``qe_mrsigner`` (QE report), ``qe_identity_mrsigner`` (QE identity), ``revoke_pck``, ``revoked_serials``, ``revoke_platform_ca``,
    ``tcb_info_signer`` (which simulated key signs the TCB info: ``tcb``, or ``pck``/``platform``/``root`` for
    negative tests), ``cert_data_type`` (5 = PEM chain in the quote, 1 = PPID: PCK in the collateral), ``combined``
    (one dcap-qvl style collateral.json), ``tcb_validity_days``, ``cert_validity_days``."""
    known = _COMMON | (_SGX if tee == Tee.SGX else _TDX)
    unknown = set(f) - known
    if unknown:
        raise TypeError(f"unknown simulate_{tee.value} fields: {', '.join(sorted(unknown))}")
    is_tdx = tee == Tee.TDX
    now: datetime = f.get("at") or datetime.now(UTC).replace(microsecond=0)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cert_days = f.get("cert_validity_days", 3650)
    tcb_days = f.get("tcb_validity_days", 30)

    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("pck", "att")}
    _intel_name("Intel SGX Root CA")
    ca_name = _intel_name("Intel SGX PCK Platform CA")
    not_before, not_after = now - timedelta(days=1), now + timedelta(days=cert_days)
    pki: IntelTestPki = f.get("pki") or IntelTestPki.create(not_before, not_after)
    keys.update(root=pki.root_key, platform=pki.platform_key, tcb=pki.tcb_key)
    root, platform, tcb_signer = pki.root, pki.platform, pki.tcb

    comps = tuple(f.get("tcb_components", DEFAULT_COMPONENTS))
    if len(comps) != 16:
        raise ValueError("tcb_components: exactly 16 SVNs")
    pcesvn = f.get("pcesvn", DEFAULT_PCESVN)
    cpusvn = f.get("cpusvn", bytes(comps) if max(comps) < 256 else bytes(16))
    fmspc = f.get("fmspc", DEFAULT_FMSPC[tee])
    pce_id = f.get("pce_id", b"\x00\x00")
    ppid = f.get("ppid", hashlib.sha256(b"simulated ppid").digest()[:16])
    ext = _sgx_extension(ppid, comps, pcesvn, cpusvn, pce_id, fmspc)
    shape = f.get("pck_chain", "standard")
    pck_issuer_name, pck_issuer_key, chain_tail = ca_name, keys["platform"], [platform, root]
    if shape == "direct":
        pck_issuer_name, pck_issuer_key, chain_tail = root.subject, keys["root"], [root]
    elif shape == "long":
        extra_key = ec.generate_private_key(ec.SECP256R1())
        extra = _cert(_intel_name("Intel SGX PCK Sub CA"), ca_name, extra_key, keys["platform"], not_before,
                      not_after, ca=True, path_len=0)
        pck_issuer_name, pck_issuer_key, chain_tail = extra.subject, extra_key, [extra, platform, root]
    elif shape == "no-root":
        chain_tail = [platform]  # the verifier must find the root among its anchors
    elif shape not in ("standard", "ca-leaf"):
        raise ValueError("pck_chain: standard, ca-leaf, direct, long or no-root")
    pck = _cert(_intel_name("Intel SGX PCK Certificate"), pck_issuer_name, keys["pck"], pck_issuer_key, not_before,
                not_after, ca=shape == "ca-leaf", sgx_ext=ext)

    # --- the quote -----------------------------------------------------------------------------
    debug = bool(f.get("debug", False))
    if is_tdx:
        version = f.get("quote_version", 5 if f.get("td15") else 4)
        td15 = bool(f.get("td15", version == 5))
        tee_tcb_svn = f.get("tee_tcb_svn", DEFAULT_TEE_TCB_SVN)
        rtmrs = f.get("rtmrs") or tuple(f.get(f"rtmr{i}", _h48(f"rtmr{i}")) for i in range(4))
        td_attributes = bytearray(f.get("td_attributes", bytes(8)))
        if debug:
            td_attributes[0] |= 0x01
        elif "td_attributes" not in f:
            td_attributes[0] &= 0xFE
        body = abi.TdReportBody.build(
            tee_tcb_svn=tee_tcb_svn,
            mrseam=f.get("mrseam", _h48("mrseam")),
            mrsignerseam=f.get("mrsignerseam", bytes(48)),
            seam_attributes=f.get("seam_attributes", bytes(8)),
            td_attributes=bytes(td_attributes),
            xfam=f.get("xfam", bytes.fromhex("e702060000000000")),
            mrtd=f.get("mrtd", _h48("mrtd")),
            mrconfigid=f.get("mrconfigid", bytes(48)),
            mrowner=f.get("mrowner", bytes(48)),
            mrownerconfig=f.get("mrownerconfig", bytes(48)),
            rtmrs=tuple(rtmrs),
            report_data=f.get("report_data", bytes(64)),
            tee_tcb_svn2=f.get("tee_tcb_svn2", tee_tcb_svn) if td15 else None,
            mrservicetd=f.get("mrservicetd", bytes(48)) if td15 else None,
        )
        tee_type = abi.TEE_TYPE_TDX
        qe_svn, hdr_pce_svn = f.get("qe_svn", 0), f.get("pce_svn", 0)
    else:
        version = f.get("quote_version", 3)
        td15 = False
        attributes = bytearray(f.get("attributes", (0x05).to_bytes(8, "little") + (0xE7).to_bytes(8, "little")))
        if debug:
            attributes[0] |= 0x02
        elif "attributes" not in f:
            attributes[0] &= 0xFD
        body = abi.SgxReportBody.build(
            cpusvn=f.get("cpusvn", cpusvn),
            misc_select=f.get("misc_select", 0),
            attributes=bytes(attributes),
            mrenclave=f.get("mrenclave", hashlib.sha256(b"simulated mrenclave").digest()),
            mrsigner=f.get("mrsigner", hashlib.sha256(b"simulated mrsigner").digest()),
            isv_prod_id=f.get("isv_prodid", 0),
            isv_svn=f.get("isv_svn", 0),
            report_data=f.get("report_data", bytes(64)),
        )
        tee_type = abi.TEE_TYPE_SGX
        qe_svn, hdr_pce_svn = f.get("qe_svn", 8), f.get("pce_svn", pcesvn)

    header = abi.QuoteHeader(version, abi.ATT_KEY_TYPE_ECDSA_P256, tee_type, qe_svn, hdr_pce_svn,
                             abi.INTEL_QE_VENDOR_ID, hashlib.sha256(b"qe id").digest()[:16] + bytes(4), b"")
    att_pub = keys["att"].public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)[1:]
    qe_auth = bytes(range(32))
    qe_mrsigner = f.get("qe_mrsigner", INTEL_TD_QE_MRSIGNER if is_tdx else INTEL_QE_MRSIGNER)
    qe_isvsvn = f.get("qe_isvsvn", DEFAULT_QE_ISVSVN[tee])
    qe_report = abi.SgxReportBody.build(
        cpusvn=cpusvn,
        attributes=bytes.fromhex("11000000000000000700000000000000" if is_tdx else "15000000000000000700000000000000"),
        mrenclave=hashlib.sha256(b"simulated QE").digest(),
        mrsigner=qe_mrsigner,
        isv_prod_id=2 if is_tdx else 1,
        isv_svn=qe_isvsvn,
        report_data=hashlib.sha256(att_pub + qe_auth).digest() + f.get("qe_report_data_tail", bytes(32)),
    )
    qe_sig = _raw_sign(keys["pck"], qe_report)
    pem_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pck, *chain_tail))
    cert_type = f.get("cert_data_type", abi.CERT_TYPE_PCK_CHAIN)
    if cert_type == abi.CERT_TYPE_PCK_CHAIN:
        cert_data = abi.CertificationData(cert_type, pem_chain)
    elif cert_type == abi.CERT_TYPE_PPID_CLEARTEXT:
        cert_data = abi.CertificationData(cert_type, ppid + cpusvn + pcesvn.to_bytes(2, "little")
                                          + f.get("quote_pce_id", pce_id))
    else:
        raise ValueError("cert_data_type: 5 (PCK chain) or 1 (cleartext PPID)")
    qe = abi.QeReportCertificationData(qe_report, qe_sig, qe_auth, cert_data)
    body_type = abi.BODY_TYPE_TD15 if td15 else abi.BODY_TYPE_TD10 if is_tdx else abi.BODY_TYPE_SGX
    unsigned = abi.build_quote(header, body, bytes(64), att_pub, qe, body_type)
    signature = _raw_sign(keys["att"], abi.signed_region_of(unsigned))
    quote = abi.build_quote(header, body, signature, att_pub, qe, body_type)

    # --- collateral ------------------------------------------------------------------------------
    files: dict[str, bytes] = {"quote.bin": quote}
    cs = CollateralSet()
    issue = now - timedelta(hours=1)
    next_update = now + timedelta(days=tcb_days)

    revoked = list(f.get("revoked_serials", []))
    if f.get("revoke_pck"):
        revoked.append(pck.serial_number)
    root_revoked = [platform.serial_number] if f.get("revoke_platform_ca") else []
    root_crl = _crl(root, keys["root"], root_revoked, issue, next_update)
    pck_crl = _crl(platform, keys["platform"], revoked, issue, next_update)

    tcb_json = qe_json = None
    other: IntelTestPki | None = f.get("collateral_pki")
    signers = dict(keys) if other is None else {**keys, "tcb": other.tcb_key}
    if f.get("include_tcb_info", True):
        tcb_body = _tcb_info_body(tee, f, comps, pcesvn, f.get("tcb_info_fmspc", fmspc), f.get("tcb_info_pce_id", pce_id),
                                  tee_tcb_svn
                                  if is_tdx else None, issue, next_update)
        tcb_json = (tcb_body, _raw_sign(signers[f.get("tcb_info_signer", "tcb")], tcb_body))
    if f.get("include_qe_identity", True):
        qe_body = _qe_identity_body(is_tdx, f, f.get("qe_identity_mrsigner", qe_mrsigner), qe_isvsvn, issue,
                                    next_update)
        qe_json = (qe_body, _raw_sign(signers["tcb"], qe_body))
    tcb_signer_chain = (tcb_signer, root) if other is None else (other.tcb, other.root)
    tcb_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in tcb_signer_chain)

    if f.get("combined", False):
        doc: dict[str, Any] = {
            "pck_crl_issuer_chain": (platform.public_bytes(serialization.Encoding.PEM)
                                     + root.public_bytes(serialization.Encoding.PEM)).decode(),
            "root_ca_crl": root_crl.public_bytes(serialization.Encoding.DER).hex(),
            "pck_crl": pck_crl.public_bytes(serialization.Encoding.DER).hex(),
        }
        if tcb_json:
            doc.update(tcb_info_issuer_chain=tcb_chain.decode(), tcb_info=tcb_json[0].decode(),
                       tcb_info_signature=tcb_json[1].hex())
        if qe_json:
            doc.update(qe_identity_issuer_chain=tcb_chain.decode(), qe_identity=qe_json[0].decode(),
                       qe_identity_signature=qe_json[1].hex())
        raw = json.dumps(doc).encode()
        files["collateral.json"] = raw
        cs.json_documents.append(("collateral.json", raw))
    else:
        if tcb_json:
            files["tcbinfo.json"] = _pcs_document("tcbInfo", *tcb_json)
            cs.json_documents.append(("tcbinfo.json", files["tcbinfo.json"]))
        if qe_json:
            files["qe_identity.json"] = _pcs_document("enclaveIdentity", *qe_json)
            cs.json_documents.append(("qe_identity.json", files["qe_identity.json"]))
        if tcb_json or qe_json:
            files["tcb_signing_chain.pem"] = tcb_chain
            cs.certificates.extend(tcb_signer_chain)
        if f.get("include_crls", True):
            files["root_ca.crl.der"] = root_crl.public_bytes(serialization.Encoding.DER)
            files["pck_platform.crl.der"] = pck_crl.public_bytes(serialization.Encoding.DER)
            cs.crls.extend([root_crl, pck_crl])
    if cert_type != abi.CERT_TYPE_PCK_CHAIN:
        files["pck_cert.pem"] = pck.public_bytes(serialization.Encoding.PEM)
        files["pck_sign_chain.pem"] = (platform.public_bytes(serialization.Encoding.PEM)
                                       + root.public_bytes(serialization.Encoding.PEM))
        cs.certificates.extend([pck, platform])
    files["trusted_root_ca.pem"] = root.public_bytes(serialization.Encoding.PEM)
    cs.sources.extend(n for n in files if n not in ("quote.bin", "trusted_root_ca.pem"))

    result = SimulatedIntelEvidence(
        tee=tee, quote=quote, collateral=cs, root=root, at=now, files=files, pck=pck, keys=keys,
        certs={"root": root, "platform": platform, "pck": pck, "tcb": tcb_signer},
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (out / name).write_bytes(data)
            result.paths[name] = out / name
    return result


_COMMON = {
    "at", "qe_svn", "pce_svn", "tcb_components", "pcesvn", "cpusvn", "fmspc", "pce_id", "ppid", "tcb_status",
    "advisory_ids", "tcb_levels", "tcb_info_fmspc", "include_tcb_info", "include_qe_identity", "include_crls",
    "qe_isvsvn", "qe_tcb_status", "qe_mrsigner", "qe_identity_mrsigner", "tcb_info_signer", "tcb_info_pce_id", "tcb_type",
    "revoke_pck", "revoked_serials", "revoke_platform_ca",
    "cert_data_type", "combined", "tcb_validity_days", "cert_validity_days", "report_data", "debug",
    "quote_version", "pki", "qe_report_data_tail", "pck_chain", "quote_pce_id", "collateral_pki",
}
_SGX = {"mrenclave", "mrsigner", "isv_svn", "isv_prodid", "attributes", "misc_select"}
_TDX = {
    "mrtd", "rtmrs", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner", "mrownerconfig", "mrservicetd",
    "td_attributes", "xfam", "tee_tcb_svn", "tee_tcb_svn2", "mrseam", "mrsignerseam", "seam_attributes",
    "tdx_module_status", "td15",
}


def platform_collateral(tee: Tee, pki: IntelTestPki, at: datetime, *, days: int = 30) -> dict[str, bytes]:
    """The collateral a verifier needs for every quote simulated with ``pki`` and the default platform
    fields: signed TCB info and QE identity (Intel PCS layout), the root CA and PCK platform CA CRLs, and the
    TCB signing chain; valid from an hour before ``at`` for ``days``."""
    is_tdx = tee == Tee.TDX
    issue, next_update = at - timedelta(hours=1), at + timedelta(days=days)
    tcb = _tcb_info_body(tee, {}, DEFAULT_COMPONENTS, DEFAULT_PCESVN, DEFAULT_FMSPC[tee], b"\x00\x00",
                         DEFAULT_TEE_TCB_SVN if is_tdx else None, issue, next_update)
    qe = _qe_identity_body(is_tdx, {}, INTEL_TD_QE_MRSIGNER if is_tdx else INTEL_QE_MRSIGNER, DEFAULT_QE_ISVSVN[tee],
                           issue, next_update)
    der = serialization.Encoding.DER
    name = tee.value
    return {
        f"{name}-tcbinfo-{DEFAULT_FMSPC[tee].hex()}.json": _pcs_document("tcbInfo", tcb, _raw_sign(pki.tcb_key, tcb)),
        f"{name}-qe-identity.json": _pcs_document("enclaveIdentity", qe, _raw_sign(pki.tcb_key, qe)),
        "root_ca.crl.der": _crl(pki.root, pki.root_key, [], issue, next_update).public_bytes(der),
        "pck_platform.crl.der": _crl(pki.platform, pki.platform_key, [], issue, next_update).public_bytes(der),
        "tcb_signing_chain.pem": b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pki.tcb, pki.root)),
    }


def _pcs_document(key: str, body: bytes, signature: bytes) -> bytes:
    """Intel PCS layout: ``{"tcbInfo": {...}, "signature": "<r||s hex>"}`` (the member's exact bytes signed)."""
    return b'{"' + key.encode() + b'":' + body + b',"signature":"' + signature.hex().encode() + b'"}'


def _tcb_info_body(tee: Tee, f: dict[str, Any], comps: tuple[int, ...], pcesvn: int, fmspc: bytes, pce_id: bytes,
                   tee_tcb_svn: bytes | None, issue: datetime, next_update: datetime) -> bytes:
    is_tdx = tee == Tee.TDX
    levels = f.get("tcb_levels")
    if levels is None:
        tdx = None
        if is_tdx and tee_tcb_svn is not None:
            tdx = list(tee_tcb_svn)
        levels = [{"sgx": list(comps), "pcesvn": pcesvn, "tdx": tdx, "status": f.get("tcb_status", "UpToDate"),
                   "advisories": list(f.get("advisory_ids", []))}]
    out_levels = []
    for lv in levels:
        tcb: dict[str, Any] = {
            "sgxtcbcomponents": [{"svn": s} for s in lv["sgx"]],
            "pcesvn": lv["pcesvn"],
        }
        if is_tdx:
            tcb["tdxtcbcomponents"] = [{"svn": s} for s in (lv.get("tdx") or [0] * 16)]
        entry: dict[str, Any] = {"tcb": tcb, "tcbDate": lv.get("date", "2024-03-13T00:00:00Z"),
                                 "tcbStatus": lv["status"]}
        if lv.get("advisories"):
            entry["advisoryIDs"] = list(lv["advisories"])
        out_levels.append(entry)
    body: dict[str, Any] = {
        "id": "TDX" if is_tdx else "SGX",
        "version": 3,
        "issueDate": _iso(issue),
        "nextUpdate": _iso(next_update),
        "fmspc": fmspc.hex().upper(),
        "pceId": pce_id.hex().upper(),
        "tcbType": f.get("tcb_type", 0),
        "tcbEvaluationDataNumber": 17,
    }
    if is_tdx:
        module = {"mrsigner": "00" * 48, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"}
        body["tdxModule"] = module
        version = tee_tcb_svn[1] if tee_tcb_svn else 0
        isvsvn = tee_tcb_svn[0] if tee_tcb_svn else 0
        body["tdxModuleIdentities"] = [
            {"id": f"TDX_{version:02d}", **module,
             "tcbLevels": [{"tcb": {"isvsvn": isvsvn}, "tcbDate": "2024-03-13T00:00:00Z",
                            "tcbStatus": f.get("tdx_module_status", "UpToDate")}]}
        ]
    body["tcbLevels"] = out_levels
    return json.dumps(body, separators=(",", ":")).encode()


def _qe_identity_body(is_tdx: bool, f: dict[str, Any], mrsigner: bytes, isvsvn: int, issue: datetime,
                      next_update: datetime) -> bytes:
    body = {
        "id": "TD_QE" if is_tdx else "QE",
        "version": 2,
        "issueDate": _iso(issue),
        "nextUpdate": _iso(next_update),
        "tcbEvaluationDataNumber": 17,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": mrsigner.hex().upper(),
        "isvprodid": 2 if is_tdx else 1,
        "tcbLevels": [{"tcb": {"isvsvn": isvsvn}, "tcbDate": "2024-03-13T00:00:00Z",
                       "tcbStatus": f.get("qe_tcb_status", "UpToDate")}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------------
# small private PKI helpers


def _intel_name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])


def _cert(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
          not_before: datetime, not_after: datetime, *, ca: bool, path_len: int | None = None,
          sgx_ext: bytes | None = None) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if sgx_ext is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXT), sgx_ext), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, serials: list[int], this_update: datetime,
         next_update: datetime) -> x509.CertificateRevocationList:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this_update).build()
        )
    return b.sign(key, hashes.SHA256())


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _entry(oid: str, value: bytes) -> bytes:
    return der.seq(der.oid(oid), value)


def _sgx_extension(ppid: bytes, comps: tuple[int, ...], pcesvn: int, cpusvn: bytes, pce_id: bytes,
                   fmspc: bytes) -> bytes:
    tcb = b"".join(_entry(f"{SGX_EXT}.2.{i + 1}", der.integer(c)) for i, c in enumerate(comps))
    tcb += _entry(f"{SGX_EXT}.2.17", der.integer(pcesvn)) + _entry(f"{SGX_EXT}.2.18", der.octet_string(cpusvn))
    return der.seq(
        _entry(f"{SGX_EXT}.1", der.octet_string(ppid)),
        _entry(f"{SGX_EXT}.2", der.tlv(0x30, tcb)),
        _entry(f"{SGX_EXT}.3", der.octet_string(pce_id)),
        _entry(f"{SGX_EXT}.4", der.octet_string(fmspc)),
        _entry(f"{SGX_EXT}.5", der.tlv(0x0A, b"\x00")),
    )


def _h48(label: str) -> bytes:
    return hashlib.sha384(label.encode()).digest()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
