"""Decode a Steward CSR: PKCS#10 self-signature, then the evidence extension per OID.

The envelope formats are defined once, in :mod:`enarx.attestation.envelope`. Every decoding problem
raises :class:`CsrError` (a typed error with an HTTP status and a reason token); nothing else escapes
:func:`decode_csr`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import core
from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enarx.attestation.collateral import add_bytes
from enarx.attestation.envelope import (
    OID_KVM,
    OID_SGX,
    OID_SNP,
    OID_TDX,
    LegacySnpEvidence,
    SgxEvidence,
    SnpEvidence,
    TdxEvidence,
)
from enarx.attestation.freshness import NONCE_SIZE, OID_NONCE
from enarx.attestation.model import AttestationError, CollateralSet, Tee
from enarx.attestation.pki import _sig_alg, verify_signed
from enarx.isolation import ISOLATION_LABELS, OID_ISOLATION

OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
EVIDENCE_OIDS = {OID_KVM: Tee.KVM, OID_SGX: Tee.SGX, OID_SNP: Tee.SNP, OID_TDX: Tee.TDX}
SNP_REPORT_SIZE = 1184
MAX_CRLS = 64
MAX_CERTS = 64
#: Caps on what a CSR may make the Steward parse: vendors' CRLs are small (Intel's PCK platform CRL: ~3 KB,
#: 44 entries in 2023; AMD's: no entries), so these leave ample room while keeping the worst request cheap.
MAX_CRL_BYTES = 256 << 10
MAX_CRL_ENTRIES = 4096
MAX_CRL_ENTRIES_TOTAL = 8192
MAX_JSON_BYTES = 256 << 10


class CsrError(AttestationError):
    """A request the Steward cannot decode or accept before verification; carries an HTTP status."""

    def __init__(self, message: str, *, reason: str, status: int = 400):
        super().__init__(message, reason=reason)
        self.status = status


class CertReqs(core.SequenceOf):
    """The bundle body: ``SEQUENCE OF CertificationRequest``."""

    _child_spec = asn1_csr.CertificationRequest


# --- decoded request ---------------------------------------------------------------------------------


@dataclass
class Evidence:
    """One attesting extension: the TEE it claims, the raw evidence bytes and its collateral."""

    oid: str
    tee: Tee
    evidence: bytes
    collateral: CollateralSet = field(default_factory=CollateralSet)
    extension_der: bytes = b""  # the whole Extension, for copying (KVM only, as Enarx does)


@dataclass
class DecodedCsr:
    public_key: Any
    spki_der: bytes
    signature_algorithm: str
    evidence: list[Evidence]
    nonce: bytes | None = None  # a challenge nonce (OID_NONCE extension) bound into the evidence with the key
    isolation: str | None = None  # the keep's declaration that it is not isolated (OID_ISOLATION): a downgrade

    @property
    def spki_sha256(self) -> str:
        return hashlib.sha256(self.spki_der).hexdigest()

    def key_kind(self) -> str:
        """``P-256``, ``P-384``, ``P-521``, ``RSA-<bits>`` or the key class name."""
        key = self.public_key
        if isinstance(key, ec.EllipticCurvePublicKey):
            return {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(key.curve.name,
                                                                                         key.curve.name)
        if isinstance(key, rsa.RSAPublicKey):
            return f"RSA-{key.key_size}"
        return type(key).__name__


def _load(spec: type[core.Asn1Value], data: bytes, what: str, reason: str = "malformed-evidence") -> Any:
    """Parse ``data`` fully (asn1crypto is lazy) with no trailing bytes; :class:`CsrError` otherwise."""
    try:
        value = spec.load(data, strict=True)
        value.native  # noqa: B018 - forces every nested value to parse now
        return value
    except CsrError:
        raise
    except Exception as exc:  # noqa: BLE001 - asn1crypto raises ValueError, TypeError, KeyError, …
        raise CsrError(f"{what} is not valid DER: {_short(exc)}", reason=reason) from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _crl_ders(crl_list: Any) -> list[bytes]:
    """The DER CRLs of a CrlList, within the size and entry caps, checked before anything parses their
    entries (counting them with ``cryptography`` costs microseconds; a full parse of 40,000 costs seconds)."""
    entries = crl_list["crls"]
    if len(entries) > MAX_CRLS:
        raise CsrError(f"{len(entries)} CRLs is more than {MAX_CRLS}", reason="malformed-evidence")
    ders, total = [], 0
    for entry in entries:
        der = entry["crl"].dump()
        if len(der) > MAX_CRL_BYTES:
            raise CsrError(f"a CRL of {len(der)} bytes is larger than the Steward's limit of {MAX_CRL_BYTES}",
                           reason="crl-too-large")
        try:
            count = len(x509.load_der_x509_crl(der))
        except ValueError as exc:
            raise CsrError(f"a CRL in the evidence is not a DER X.509 CRL: {_short(exc)}",
                           reason="malformed-evidence") from None
        if count > MAX_CRL_ENTRIES:
            raise CsrError(f"a CRL with {count} entries is more than the Steward's limit of {MAX_CRL_ENTRIES}",
                           reason="crl-too-large")
        total += count
        if total > MAX_CRL_ENTRIES_TOTAL:
            raise CsrError(f"the CRLs carry more than {MAX_CRL_ENTRIES_TOTAL} entries in all",
                           reason="crl-too-large")
        ders.append(der)
    return ders


def _collateral(certs: list[bytes], crls: list[bytes], what: str) -> CollateralSet:
    if len(certs) > MAX_CERTS:
        raise CsrError(f"{len(certs)} certificates is more than {MAX_CERTS}", reason="malformed-evidence")
    # Kept as DER: the verifier parses each item through its own bounded cache (keyed by the exact bytes), so
    # the collateral every keep of a platform sends is parsed once, not on every request (parsing it here as
    # well cost two thirds of a request); a malformed certificate is refused there (reason "parse"). Not
    # checked with cryptography here: it warns on, and will refuse, the serial number 0 of AMD's real VCEKs.
    return CollateralSet(raw_certificates=list(certs), raw_crls=list(crls), sources=[what])


def _add_json(out: CollateralSet, raw: bytes, what: str) -> None:
    if len(raw) > MAX_JSON_BYTES:
        raise CsrError(f"{what} of {len(raw)} bytes is larger than the Steward's limit of {MAX_JSON_BYTES}",
                       reason="malformed-evidence")
    try:
        ok = add_bytes(out, raw, what)
    except AttestationError:
        ok = False
    if not ok or not out.json_documents:
        raise CsrError(f"{what} is not JSON", reason="malformed-evidence")


def decode_evidence(oid: str, value: bytes, critical: bool) -> Evidence:
    """The evidence and collateral carried by one extension; :class:`CsrError` when undecodable."""
    tee = EVIDENCE_OIDS.get(oid)
    if tee is None:
        raise CsrError(f"unknown extension {oid} in the CSR", reason="unknown-extension")
    if critical:
        raise CsrError(f"evidence extension {oid} must not be critical", reason="malformed-evidence")
    if tee is Tee.KVM:
        if value:
            raise CsrError("KVM/nil evidence must be empty", reason="malformed-evidence")
        return Evidence(oid, tee, b"")
    if tee is Tee.SNP:
        return _decode_snp(value)
    try:
        return _decode_intel(oid, tee, value)
    except CsrError:
        raise
    except Exception as exc:  # noqa: BLE001 - asn1crypto's lazy parsing raises ValueError, TypeError, …
        raise CsrError(f"{tee.value} evidence is not valid DER: {_short(exc)}", reason="malformed-evidence") from None


def _decode_intel(oid: str, tee: Tee, value: bytes) -> Evidence:
    """SGX/TDX containers, parsed lazily: the certificates and CRLs inside (Intel's PCK CRLs are large) are
    only cut out as DER here and parsed once, by ``cryptography``, when the collateral set is built."""
    spec = SgxEvidence if tee is Tee.SGX else TdxEvidence
    parsed = spec.load(value, strict=True)
    quote = parsed["quote"].native
    _check_quote_tee(quote, tee)
    certs = [c.dump() for c in parsed["tcb"]["certs"]]
    collateral = _collateral(certs, _crl_ders(parsed["crls"]), f"{tee.value} evidence")
    tcb_info = parsed["tcb"]["report"].native
    if tcb_info:  # a TDX guest sends none: the Steward's own collateral supplies it
        _add_json(collateral, tcb_info, "TcbPackage tcbInfo")
    if tee is Tee.TDX and parsed["qe_identity"].native is not None:
        before = len(collateral.json_documents)
        _add_json(collateral, parsed["qe_identity"].native, "qeIdentity")
        if len(collateral.json_documents) == before:
            raise CsrError("qeIdentity is not JSON", reason="malformed-evidence")
    return Evidence(oid, tee, quote, collateral)


INTEL_TEE_TYPES = {Tee.SGX: 0x00000000, Tee.TDX: 0x00000081}  # quote header bytes 4..8, little-endian


def _check_quote_tee(quote: bytes, tee: Tee) -> None:
    """The quote must be of the TEE its extension OID names: the SGX and TDX verifiers share code, so a TDX
    quote under the SGX OID would otherwise be verified (and certified) as if it were SGX."""
    if len(quote) < 8:
        raise CsrError(f"{tee.value} quote of {len(quote)} bytes has no header", reason="malformed-evidence")
    found = int.from_bytes(quote[4:8], "little")
    if found != INTEL_TEE_TYPES[tee]:
        named = {v: k.value for k, v in INTEL_TEE_TYPES.items()}.get(found, f"tee_type 0x{found:x}")
        raise CsrError(f"the evidence under the {tee.value} extension OID is a {named} quote",
                       reason="tee-mismatch")


def _decode_snp(value: bytes) -> Evidence:
    """Parsed lazily like the Intel containers: CRLs are size-checked before their entries are parsed."""
    try:
        parsed = SnpEvidence.load(value, strict=True)
        report = parsed["report"].native
        vcek = parsed["vcek"]
        vcek_der = vcek["vcek"].dump()
        crls = vcek["crls"]
        crls["crls"]  # the CrlList must decode as one
    except Exception:  # noqa: BLE001 - asn1crypto raises ValueError, TypeError, KeyError, …
        try:
            _load(LegacySnpEvidence, value, "SEV-SNP evidence")
        except CsrError:
            raise CsrError("SEV-SNP evidence is not SEQUENCE { SEQUENCE { VCEK, CrlList }, OCTET STRING report }",
                           reason="malformed-evidence") from None
        raise CsrError("legacy Steward SEV-SNP container SEQUENCE { VCEK, report } without a CrlList: "
                       "revocation of the VCEK chain cannot be checked; the keep must send "
                       "SEQUENCE { SEQUENCE { VCEK, CrlList }, report }", reason="legacy-evidence") from None
    if len(report) != SNP_REPORT_SIZE:
        raise CsrError(f"SEV-SNP report is {len(report)} bytes, not {SNP_REPORT_SIZE}", reason="malformed-evidence")
    try:
        crl_ders = _crl_ders(crls)
    except CsrError:
        raise
    except Exception as exc:  # noqa: BLE001 - lazy parsing of the CrlList
        raise CsrError(f"SEV-SNP evidence is not valid DER: {_short(exc)}", reason="malformed-evidence") from None
    collateral = _collateral([vcek_der], crl_ders, "SEV-SNP evidence")
    return Evidence(OID_SNP, Tee.SNP, report, collateral)


def _plain_extension(value: bytes, critical: bool, spec: type[core.Asn1Value], kind: str, what: str, oid: str) -> Any:
    """The value of a non-critical extension holding one ASN.1 ``spec`` (the nonce, the isolation label)."""
    if critical:
        raise CsrError(f"{what} extension {oid} must not be critical", reason="malformed-csr")
    try:
        return spec.load(value, strict=True).native
    except Exception as exc:  # noqa: BLE001 - asn1crypto raises several types
        raise CsrError(f"{what} extension is not {kind}: {_short(exc)}", reason="malformed-csr") from None


def _decode_nonce(value: bytes, critical: bool) -> bytes:
    nonce = _plain_extension(value, critical, core.OctetString, "an OCTET STRING", "challenge nonce", OID_NONCE)
    if not 1 <= len(nonce) <= NONCE_SIZE:
        raise CsrError(f"challenge nonce of {len(nonce)} bytes is not one a Steward issues", reason="malformed-csr")
    return nonce


def _decode_isolation(value: bytes, critical: bool) -> str:
    label = _plain_extension(value, critical, core.UTF8String, "a UTF8String", "isolation label", OID_ISOLATION)
    if label not in ISOLATION_LABELS:
        raise CsrError(f"isolation label {label[:80]!r} is not one of: {'; '.join(ISOLATION_LABELS)}",
                       reason="malformed-csr")
    return label


def decode_csr(body: bytes) -> DecodedCsr:
    """Parse a DER PKCS#10 request, verify its self-signature, and decode every evidence extension."""
    try:  # lazily: the evidence (up to the body limit) is cut out as bytes, never parsed whole here
        req = asn1_csr.CertificationRequest.load(body, strict=True)
    except Exception as exc:  # noqa: BLE001 - asn1crypto raises ValueError, TypeError, …
        raise CsrError(f"CSR is not valid DER: {_short(exc)}", reason="malformed-csr") from None
    return decode_request(req)


def decode_request(req: Any) -> DecodedCsr:
    """Like :func:`decode_csr` for an already parsed ``asn1crypto`` request (bundles)."""
    try:
        info = req["certification_request_info"]
        if info["version"].native != "v1":
            raise CsrError(f"CSR version {info['version'].native} is not v1", reason="malformed-csr")
        spki = info["subject_pk_info"].dump()
        try:
            public_key = serialization.load_der_public_key(spki)
        except (ValueError, TypeError) as exc:
            raise CsrError(f"CSR public key not usable: {_short(exc)}", reason="malformed-csr") from None
        algorithm = _sig_alg(req["signature_algorithm"])
        if not verify_signed(public_key, algorithm, info.dump(), req["signature"].native):
            raise CsrError("CSR signature does not verify with its own public key", reason="csr-signature")
        evidence: list[Evidence] = []
        nonces: list[bytes] = []
        labels: list[str] = []
        for attr in info["attributes"]:
            oid = attr["type"].dotted
            if oid != OID_EXTENSION_REQUEST:
                raise CsrError(f"CSR attribute {oid} is not extensionRequest", reason="malformed-csr")
            for extensions in attr["values"]:
                for ext in extensions:
                    ext_oid, value, critical = ext["extn_id"].dotted, ext["extn_value"].contents, \
                        bool(ext["critical"].native)
                    if ext_oid == OID_NONCE:
                        nonces.append(_decode_nonce(value, critical))
                        continue
                    if ext_oid == OID_ISOLATION:
                        labels.append(_decode_isolation(value, critical))
                        continue
                    item = decode_evidence(ext_oid, value, critical)
                    item.extension_der = ext.dump()
                    evidence.append(item)
        if len(nonces) > 1:
            raise CsrError("the CSR carries more than one challenge nonce", reason="malformed-csr")
        if len(labels) > 1:
            raise CsrError("the CSR carries more than one isolation label", reason="malformed-csr")
        return DecodedCsr(public_key, spki, algorithm.oid, evidence, nonces[0] if nonces else None,
                          labels[0] if labels else None)
    except CsrError:
        raise
    except Exception as exc:  # noqa: BLE001 - lazy asn1crypto parsing errors surface here
        raise CsrError(f"CSR is not valid: {_short(exc)}", reason="malformed-csr") from None
