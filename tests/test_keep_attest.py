"""Keep-side attestation pieces: report_data binding, the CSR, evidence containers, configfs TSM."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.binding import report_data_for
from enarx.attestation.model import Tee
from enarx.errors import KeepError
from enarx.runtime.attest.csr import build_csr
from enarx.runtime.attest.evidence import (
    OID_KVM,
    OID_SNP,
    NilEvidence,
    SnpGuestEvidence,
    TdxGuestEvidence,
    TsmReport,
    snp_extension,
    snp_vcek_from_auxblob,
)
from enarx.runtime.attest.steward import challenge_url, tls_context
from enarx.steward.csr import decode_csr


def spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_report_data_binds_spki_hash():
    p384 = ec.generate_private_key(ec.SECP384R1())
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert report_data_for(p384, Tee.SNP) == hashlib.sha384(spki(p384)).digest() + bytes(16)
    assert report_data_for(p256, Tee.TDX) == hashlib.sha256(spki(p256)).digest() + bytes(32)


def test_nil_csr_is_what_enarx_sends_and_the_steward_decodes():
    key = ec.generate_private_key(NilEvidence().curve())
    der = build_csr(key, *NilEvidence().extension(report_data_for(key, NilEvidence().tee)))
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid and csr.subject == x509.Name([])
    (ext,) = csr.extensions
    assert ext.oid.dotted_string == OID_KVM and ext.critical is False and ext.value.value == b""
    decoded = decode_csr(der)
    assert [e.oid for e in decoded.evidence] == [OID_KVM]


def test_snp_container_round_trips_through_the_steward_decoder():
    from enarx.attestation.simulate.snp import simulate_snp

    key = ec.generate_private_key(ec.SECP384R1())
    sim = simulate_snp(report_data=report_data_for(key, Tee.SNP))
    value = snp_extension(sim.endorsement_cert, sim.report, [("https://kdsintf.amd.com/vcek/v1/Milan/crl", c)
                                                             for c in sim.crls])
    decoded = decode_csr(build_csr(key, OID_SNP, value))
    assert [(e.oid, e.evidence) for e in decoded.evidence] == [(OID_SNP, sim.report)]


def _fake_tsm(tmp_path: Path, provider: str, outblob: bytes, auxblob: bytes | None = None) -> TsmReport:
    entry = tmp_path / f"enarx-{os.getpid()}"
    entry.mkdir()
    (entry / "provider").write_text(provider + "\n")
    (entry / "generation").write_text("1\n")
    (entry / "outblob").write_bytes(outblob)
    if auxblob is not None:
        (entry / "auxblob").write_bytes(auxblob)
    return TsmReport(tmp_path)


def _cert_table(vcek: bytes) -> bytes:
    guid = bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    mixed = guid[3::-1] + guid[5:3:-1] + guid[7:5:-1] + guid[8:]
    header = mixed + struct.pack("<II", 48, len(vcek)) + bytes(24)  # one entry, then the zero terminator
    return header + vcek


def test_snp_guest_evidence_from_configfs_tsm(tmp_path):
    from enarx.attestation.simulate.snp import simulate_snp

    sim = simulate_snp(report_data=b"\x07" * 64)
    tsm = _fake_tsm(tmp_path, "sev_guest", sim.report, _cert_table(sim.endorsement_cert))
    oid, value = SnpGuestEvidence(tsm).extension(b"\x07" * 64)
    assert oid == OID_SNP
    assert (tmp_path / f"enarx-{os.getpid()}" / "inblob").read_bytes() == b"\x07" * 64
    assert snp_vcek_from_auxblob(_cert_table(sim.endorsement_cert)) == sim.endorsement_cert
    key = ec.generate_private_key(ec.SECP384R1())
    assert decode_csr(build_csr(key, oid, value)).evidence[0].evidence == sim.report


def test_tsm_wrong_provider_and_missing_vcek(tmp_path):
    tsm = _fake_tsm(tmp_path, "tdx_guest", b"quote")
    with pytest.raises(KeepError, match="not sev_guest"):
        SnpGuestEvidence(tsm).extension(bytes(64))
    (tmp_path / f"enarx-{os.getpid()}" / "provider").write_text("sev_guest")
    with pytest.raises(KeepError, match="VCEK"):
        SnpGuestEvidence(tsm).extension(bytes(64))
    (tmp_path / f"enarx-{os.getpid()}" / "provider").write_text("sev_guest")
    with pytest.raises(KeepError, match="not tdx_guest"):
        TdxGuestEvidence(tsm).extension(bytes(64))


def test_tsm_missing_interface_is_a_clear_error(tmp_path):
    with pytest.raises(KeepError, match="TSM"):
        TsmReport(tmp_path / "no" / "configfs").get(bytes(64))


@pytest.mark.parametrize("url,ok", [("https://attest.example.com/", True), ("http://127.0.0.1:3000/", True),
                                    ("http://localhost/", True), ("http://[::1]:1/", True),
                                    ("http://attest.example.com/", False), ("http://10.0.0.1/", False)])
def test_steward_url_rule(url, ok):
    if ok:
        context = tls_context(url, None)
        assert (context is not None) == url.startswith("https")
        assert context is None or context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    else:
        with pytest.raises(KeepError, match="refusing to use the steward url .*: use https"):
            tls_context(url, None)


@pytest.mark.parametrize("url,expected", [("http://127.0.0.1:3000/", "http://127.0.0.1:3000/challenge"),
                                          ("http://127.0.0.1:3000", "http://127.0.0.1:3000/challenge"),
                                          ("https://h.example/steward/", "https://h.example/steward/challenge"),
                                          ("https://h.example/steward?x=1", "https://h.example/steward/challenge")])
def test_challenge_url_sits_beside_the_post_path(url, expected):
    assert challenge_url(url) == expected


def test_snp_evidence_from_dev_sev_guest_when_configfs_tsm_is_absent(tmp_path):
    """SNP_GET_EXT_REPORT as <linux/sev-guest.h> lays it out, played by a fake device."""
    import ctypes

    from enarx.attestation.simulate.snp import simulate_snp
    from enarx.runtime.attest.evidence import SNP_GET_EXT_REPORT, SevGuestDevice

    sim = simulate_snp(report_data=b"\x05" * 64)
    table = _cert_table(sim.endorsement_cert)
    seen = {}

    def fake_ioctl(fd, request, arg, mutate):
        assert request == SNP_GET_EXT_REPORT and mutate
        version, req_addr, resp_addr, _exitinfo = struct.unpack("<B7xQQQ", arg)
        assert version == 1
        user_data, vmpl, certs_addr, certs_len = struct.unpack("<64sI28xQI4x", ctypes.string_at(req_addr, 112))
        seen.update(user_data=user_data, vmpl=vmpl)
        assert certs_len >= len(table)
        ctypes.memmove(certs_addr, table, len(table))
        response = struct.pack("<II24x", 0, len(sim.report)) + sim.report
        ctypes.memmove(resp_addr, response, len(response))

    device_file = tmp_path / "sev-guest"
    device_file.write_bytes(b"")
    source = SnpGuestEvidence(TsmReport(tmp_path / "no-configfs"), device=SevGuestDevice(str(device_file), fake_ioctl))
    oid, value = source.extension(b"\x05" * 64)
    assert seen == {"user_data": b"\x05" * 64, "vmpl": 0}
    key = ec.generate_private_key(ec.SECP384R1())
    assert decode_csr(build_csr(key, oid, value)).evidence[0].evidence == sim.report


def test_dev_sev_guest_errors_are_reported(tmp_path):
    import errno

    from enarx.runtime.attest.evidence import SevGuestDevice

    def refusing_ioctl(fd, request, arg, mutate):
        struct.pack_into("<II", arg, 24, 0x16, 0)  # firmware error code in exitinfo2
        raise OSError(errno.EIO, "Input/output error")

    device_file = tmp_path / "sev-guest"
    device_file.write_bytes(b"")
    with pytest.raises(KeepError, match="firmware error 0x16"):
        SevGuestDevice(str(device_file), refusing_ioctl).get(bytes(64))
    with pytest.raises(KeepError, match="is this an SEV-SNP guest"):
        SevGuestDevice(str(tmp_path / "missing")).get(bytes(64))


def test_csr_carries_the_challenge_nonce_the_report_data_binds():
    from enarx.attestation.binding import CHALLENGE_DOMAIN
    from enarx.attestation.freshness import ChallengeIssuer

    nonce = ChallengeIssuer.generate().issue().nonce
    key = ec.generate_private_key(ec.SECP384R1())
    decoded = decode_csr(build_csr(key, OID_KVM, b"", nonce=nonce))
    assert decoded.nonce == nonce and [e.oid for e in decoded.evidence] == [OID_KVM]
    assert decode_csr(build_csr(key, OID_KVM, b"")).nonce is None
    spki_der = spki(key)
    message = CHALLENGE_DOMAIN + struct.pack(">I", len(spki_der)) + spki_der + struct.pack(">I", len(nonce)) + nonce
    assert report_data_for(key, Tee.SNP, nonce) == hashlib.sha384(message).digest() + bytes(16)
    assert report_data_for(key, Tee.SNP, nonce) != report_data_for(key, Tee.SNP)  # Enarx layout unchanged
