"""The evidence envelopes a keep puts in its CSR for the Steward (Enarx §6.1): OIDs, ASN.1, encoders.

One definition for both ends — the keep encodes with it, the Steward decodes with it::

    1.3.6.1.4.1.58270.1.1  KVM/nil  empty value
    1.3.6.1.4.1.58270.1.2  SGX      SEQUENCE { quote OCTET STRING, crls CrlList, tcb TcbPackage }
    1.3.6.1.4.1.58270.1.3  SEV-SNP  SEQUENCE { SEQUENCE { vcek Certificate, crls CrlList },
                                               report OCTET STRING (1184 bytes) }
    1.3.6.1.4.1.58270.1.4  TDX      SEQUENCE { quote OCTET STRING, crls CrlList, tcb TcbPackage,
                                               qeIdentity OCTET STRING OPTIONAL (Intel QE identity JSON) }

    CrlList    ::= SEQUENCE { crls SEQUENCE OF SEQUENCE { url UTF8String, crl CertificateList } }
    TcbPackage ::= SEQUENCE { certs SEQUENCE OF Certificate, tcbInfo OCTET STRING (JSON as served) }

The first three are Enarx's; the TDX one is ours.
"""

from __future__ import annotations

from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509

ARC = "1.3.6.1.4.1.58270"
OID_KVM = f"{ARC}.1.1"
OID_SGX = f"{ARC}.1.2"
OID_SNP = f"{ARC}.1.3"
OID_TDX = f"{ARC}.1.4"


class CrlEntry(core.Sequence):
    _fields = [("url", core.UTF8String), ("crl", asn1_crl.CertificateList)]  # noqa: RUF012


class CrlEntries(core.SequenceOf):
    _child_spec = CrlEntry


class CrlList(core.Sequence):
    _fields = [("crls", CrlEntries)]  # noqa: RUF012


class Certs(core.SequenceOf):
    """``SEQUENCE OF Certificate``: TcbPackage certificates, and the chain a Steward answers with."""

    _child_spec = asn1_x509.Certificate


class TcbPackage(core.Sequence):
    _fields = [("certs", Certs), ("report", core.OctetString)]  # noqa: RUF012


class SgxEvidence(core.Sequence):
    _fields = [("quote", core.OctetString), ("crls", CrlList), ("tcb", TcbPackage)]  # noqa: RUF012


class TdxEvidence(core.Sequence):
    _fields = [("quote", core.OctetString), ("crls", CrlList), ("tcb", TcbPackage),  # noqa: RUF012
               ("qe_identity", core.OctetString, {"optional": True})]


class VcekBundle(core.Sequence):
    _fields = [("vcek", asn1_x509.Certificate), ("crls", CrlList)]  # noqa: RUF012


class SnpEvidence(core.Sequence):
    _fields = [("vcek", VcekBundle), ("report", core.OctetString)]  # noqa: RUF012


class LegacySnpEvidence(core.Sequence):
    """The 2022 Steward container, without a CrlList (decoded only to explain why it is refused)."""

    _fields = [("vcek", asn1_x509.Certificate), ("report", core.OctetString)]  # noqa: RUF012


def crl_list(crls: list[tuple[str, bytes]]) -> CrlList:
    """A CrlList from (url the CRL was fetched from, DER CRL) pairs."""
    return CrlList({"crls": [{"url": url, "crl": asn1_crl.CertificateList.load(der)} for url, der in crls]})


def snp_extension(vcek_der: bytes, report: bytes, crls: list[tuple[str, bytes]]) -> bytes:
    """SEQUENCE { SEQUENCE { VCEK, CrlList }, OCTET STRING report }."""
    bundle = {"vcek": asn1_x509.Certificate.load(vcek_der), "crls": crl_list(crls)}
    return SnpEvidence({"vcek": bundle, "report": report}).dump()


def intel_extension(quote: bytes, crls: list[tuple[str, bytes]], tcb_certs: list[bytes], tcb_info: bytes,
                    qe_identity: bytes | None = None) -> bytes:
    """SGX: SEQUENCE { quote, CrlList, TcbPackage }; with ``qe_identity`` the TDX form that adds it."""
    value = {"quote": quote, "crls": crl_list(crls),
             "tcb": {"certs": [asn1_x509.Certificate.load(c) for c in tcb_certs], "report": tcb_info}}
    if qe_identity is None:
        return SgxEvidence(value).dump()
    return TdxEvidence({**value, "qe_identity": qe_identity}).dump()
