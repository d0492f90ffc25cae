"""SEV-SNP simulator round trips (every field lands in the verified claims) and verification negatives."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation import roots
from enarx.attestation.binding import binding_check, report_data_for
from enarx.attestation.collateral import from_ders, load_collateral
from enarx.attestation.model import CollateralSet, TcbStatus, Tee
from enarx.attestation.policy import Policy
from enarx.attestation.simulate.snp import SnpTestPki, simulate_snp
from enarx.attestation.snp import abi
from enarx.attestation.snp.abi import TcbVersion, parse_report
from enarx.attestation.verifier import Verifier, verify_evidence

ALLOW_ALL = Policy.from_toml("allow_debug = true\n[snp]\nallow_migration_agent = true\nmax_vmpl = 3\n")
NO_CRL = Policy.from_toml('allow_missing_collateral = ["crl"]')


def verdict_of(sim, *, at=None, policy=None, collateral=None):
    return Verifier(anchors=sim.trust_anchors(), policy=policy).verify(
        sim.report, sim.collateral if collateral is None else collateral, at=at
    )


def trusted_claims(sim, **kw):
    verdict = verdict_of(sim, **kw)
    assert verdict.status == "trusted", [c for c in verdict.checks if not c.passed]
    return verdict.claims


def test_default_simulation_is_trusted_only_with_the_test_anchor():
    sim = simulate_snp()
    verdict = verdict_of(sim)
    assert (verdict.status, verdict.reason) == ("trusted", "ok")
    assert any("trust anchor" in w for w in verdict.warnings), "trusting a test root must warn"
    assert verdict.claims.provenance.test_anchor is True
    # built-in vendor roots alone never trust it
    plain = verify_evidence(sim.report, sim.collateral)
    assert (plain.status, plain.reason) == ("failed", "untrusted-root")
    assert "not a trust anchor for snp" in plain.checks[-1].detail
    # ...even when the test root is not among the collateral (the real ARK-Milan does not sign the test ASK)
    no_root = from_ders([sim.endorsement_cert, sim.pki.ask])
    refused = verify_evidence(sim.report, no_root)
    assert refused.reason == "untrusted-root"
    assert "not signed by the trusted root of that name" in refused.checks[-1].detail
    assert "test or simulated" in refused.checks[-1].detail


@pytest.mark.parametrize(
    "field,value,claim",
    [
        ("report_data", bytes(range(64)), lambda c: c.report_data),
        ("measurement", hashlib.sha384(b"m").digest(), lambda c: bytes.fromhex(c.measurements["measurement"])),
        ("host_data", b"\x11" * 32, lambda c: bytes.fromhex(c.measurements["host_data"])),
        ("family_id", b"\x22" * 16, lambda c: bytes.fromhex(c.measurements["family_id"])),
        ("image_id", b"\x33" * 16, lambda c: bytes.fromhex(c.measurements["image_id"])),
        ("id_key_digest", b"\x44" * 48, lambda c: bytes.fromhex(c.signer["id_key_digest"])),
        ("author_key_digest", b"\x55" * 48, lambda c: bytes.fromhex(c.signer["author_key_digest"])),
        ("guest_svn", 7, lambda c: c.svns["guest_svn"]),
        ("vmpl", 2, lambda c: c.vmpl),
        ("debug", True, lambda c: c.debug),
        ("migrate_ma", True, lambda c: c.policy_flag("migrate_ma")),
        ("single_socket", True, lambda c: c.policy_flag("single_socket")),
        ("smt", False, lambda c: c.policy_flag("smt")),
        ("abi_version", (1, 51), lambda c: c.abi),
        ("chip_id", b"\x66" * 64, lambda c: c.chip_id),
        ("firmware", (1, 57, 3), lambda c: c.firmware),
        ("report_id", b"\x77" * 32, lambda c: c.report_id),
    ],
)
def test_field_round_trip(field, value, claim):
    sim = simulate_snp(**{field: value})
    assert claim(trusted_claims(sim, policy=ALLOW_ALL)) == value


def test_policy_value_round_trip():
    value = abi.POLICY_RESERVED_1 | abi.POLICY_SMT | 0x0233
    sim = simulate_snp(policy=value)
    assert trusted_claims(sim).policy == value


@pytest.mark.parametrize("product,version,tcb", [
    ("Milan", 2, TcbVersion(3, 0, 8, 115)),
    ("Milan", 3, TcbVersion(4, 1, 24, 219)),
    ("Genoa", 3, TcbVersion(10, 0, 23, 84)),
    ("Genoa", 5, TcbVersion(9, 0, 21, 72)),
    ("Turin", 3, TcbVersion(1, 2, 3, 77, fmc=4)),
    ("Turin", 5, TcbVersion(0, 0, 1, 40, fmc=1)),
])
def test_products_versions_and_tcb_layouts(product, version, tcb):
    sim = simulate_snp(product=product, version=version, tcb=tcb, mit_vectors=(3, 5))
    claims = trusted_claims(sim)
    assert claims.product == product
    assert claims.report_version == version
    assert {k: claims.svns[k] for k in tcb.components()} == tcb.components()
    report = parse_report(sim.report)
    assert report.reported_tcb == tcb
    raw = sim.report[0x180:0x188]
    if product == "Turin":  # [fmc, bl, tee, snp, 0, 0, 0, ucode]
        assert raw == bytes([tcb.fmc, tcb.bootloader, tcb.tee, tcb.snp, 0, 0, 0, tcb.microcode])
    else:  # [bl, tee, 0, 0, 0, 0, snp, ucode]
        assert raw == bytes([tcb.bootloader, tcb.tee, 0, 0, 0, 0, tcb.snp, tcb.microcode])
    if version >= 5:
        assert (report.launch_mit_vector, report.current_mit_vector) == (3, 5)
    from asn1crypto import x509 as a

    exts = {e["extn_id"].dotted: e["extn_value"].contents for e in a.Certificate.load(sim.endorsement_cert)
            ["tbs_certificate"]["extensions"]}
    hwid = exts["1.3.6.1.4.1.3704.1.4"]
    assert hwid == (report.chip_id[:8] if product == "Turin" else report.chip_id)


def test_vlek_round_trip():
    sim = simulate_snp(signing_key="vlek", csp_id="cc-test.example")
    claims = trusted_claims(sim)
    assert claims.signing_key == "vlek"
    assert claims.csp_id == "CN=cc-test.example"
    assert claims.chip_id == bytes(64)


def test_report_signature_is_real_ecdsa_over_the_signed_region():
    sim = simulate_snp()
    report = parse_report(sim.report)
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    sim.endorsement_key.public_key().verify(
        encode_dss_signature(report.signature_r, report.signature_s), sim.report[:0x2A0], ec.ECDSA(hashes.SHA384())
    )


def test_vcek_is_byte_compatible_with_amd_quirks():
    sim = simulate_snp()
    from asn1crypto import x509 as a

    cert = a.Certificate.load(sim.endorsement_cert)
    assert cert.serial_number == 0
    assert cert["signature_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.10"
    params = cert["signature_algorithm"]["parameters"]
    assert params["salt_length"].native == 48 and params["hash_algorithm"]["algorithm"].native == "sha384"


def test_binding_helper_round_trip():
    key = ec.generate_private_key(ec.SECP384R1())
    sim = simulate_snp(report_data=report_data_for(key.public_key(), Tee.SNP))
    claims = trusted_claims(sim)
    assert binding_check(claims, key.public_key()).passed
    other = ec.generate_private_key(ec.SECP384R1())
    assert not binding_check(claims, other.public_key()).passed


# --- negatives ---------------------------------------------------------------------------------------


def test_revoked_vcek():
    verdict = verdict_of(simulate_snp(revoke_vcek=True))
    assert (verdict.status, verdict.reason) == ("failed", "revoked")


def test_revoked_ask():
    verdict = verdict_of(simulate_snp(revoke_ask=True))
    assert (verdict.status, verdict.reason) == ("failed", "revoked")
    assert "SEV-Milan" in verdict.checks[-1].detail


def test_expired_vcek_names_item_and_date():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    sim = simulate_snp(at=start, vcek_not_after=start + timedelta(days=10), crl=False)
    assert verdict_of(sim, at=start + timedelta(days=5), policy=NO_CRL).status == "trusted"
    verdict = verdict_of(sim, at=start + timedelta(days=11))
    assert (verdict.status, verdict.reason) == ("failed", "expired")
    assert "SEV-VCEK" in verdict.checks[-1].detail and "2024-01-11" in verdict.checks[-1].detail


def test_not_yet_valid():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    sim = simulate_snp(at=start, crl=False)
    verdict = verdict_of(sim, at=start - timedelta(days=30))
    assert (verdict.status, verdict.reason) == ("failed", "not-yet-valid")


def test_expired_crl():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    sim = simulate_snp(at=start, crl_next_update=start + timedelta(days=2))
    assert verdict_of(sim, at=start + timedelta(days=1)).status == "trusted"
    verdict = verdict_of(sim, at=start + timedelta(days=3))
    assert (verdict.status, verdict.reason) == ("failed", "expired")
    assert "CRL" in verdict.checks[-1].detail


def test_forged_crls_never_count_as_revocation_evidence():
    from enarx.attestation.simulate.pki import issue_crl
    from enarx.attestation.simulate.snp import _amd_name

    sim = simulate_snp(crl=False)
    other = SnpTestPki.create("Milan", key_size=2048, fresh_keys=True)
    # another PKI's ARK CRL (same name, its own key identifier): not this ARK's CRL, so revocation is unchecked
    foreign = simulate_snp(pki=other, revoke_ask=True).crls
    verdict = verdict_of(sim, collateral=from_ders([sim.endorsement_cert, sim.pki.ask, sim.pki.ark], foreign))
    assert (verdict.status, verdict.reason) == ("rejected", "missing-collateral")
    # a CRL naming this ARK and its key identifier but signed by another key is a forgery
    now = datetime.now(UTC)
    forged = issue_crl(issuer=_amd_name("ARK-Milan"), signing_key=other.ark_key, algorithm="rsa-pss-sha384",
                       this_update=now - timedelta(days=1), next_update=now + timedelta(days=1),
                       authority_key=sim.pki.ark_key.public_key())
    verdict = verdict_of(sim, collateral=from_ders([sim.endorsement_cert, sim.pki.ask, sim.pki.ark], [forged]))
    assert (verdict.status, verdict.reason) == ("failed", "signature")


def test_missing_vcek():
    sim = simulate_snp()
    verdict = verdict_of(sim, collateral=from_ders([sim.pki.ask, sim.pki.ark]))
    assert (verdict.status, verdict.reason) == ("failed", "collateral")


def test_vcek_of_another_tcb_or_chip():
    a = simulate_snp(tcb=TcbVersion(4, 0, 24, 219))
    b = simulate_snp(tcb=TcbVersion(4, 0, 24, 220))
    mixed = from_ders([b.endorsement_cert, a.pki.ask, a.pki.ark])
    verdict = verdict_of(a, collateral=mixed)
    assert (verdict.status, verdict.reason) == ("failed", "signature")


def test_product_mismatch_is_a_chain_failure():
    milan = simulate_snp(product="Milan")
    genoa_pki = SnpTestPki.create("Genoa")
    collateral = from_ders([milan.endorsement_cert, genoa_pki.ask, genoa_pki.ark])
    verdict = Verifier(anchors=roots.builtin_anchors([*milan.anchors, genoa_pki.ark])).verify(
        milan.report, collateral)
    assert (verdict.status, verdict.reason) == ("failed", "chain")


def test_every_signed_byte_matters():
    sim = simulate_snp()
    for offset in (0x00 + 4, 0x08, 0x50, 0x90, 0xC0, 0x180, 0x1A0, 0x29F, 0x2A0, 0x2E8, 0x400):
        data = bytearray(sim.report)
        data[offset] ^= 0x01
        verdict = Verifier(anchors=sim.trust_anchors()).verify(bytes(data), sim.collateral)
        assert verdict.status == "failed", hex(offset)
        assert verdict.reason in ("signature", "parse", "collateral"), (hex(offset), verdict.reason)


def test_files_written_and_loadable(tmp_path):
    sim = simulate_snp(tmp_path / "out", debug=True)
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.bin", "vcek.der", "cert_chain.pem", "root.pem", "ark.crl.der"} <= names
    collateral = load_collateral([tmp_path / "out"])
    anchors = roots.builtin_anchors(roots.load_anchor_file(tmp_path / "out" / "root.pem"))
    verdict = Verifier(anchors=anchors).verify((tmp_path / "out" / "report.bin").read_bytes(), collateral)
    assert (verdict.status, verdict.reason) == ("rejected", "debug")
    assert verdict.claims.tcb_status is TcbStatus.NOT_EVALUATED
    assert sim.paths["report"].read_bytes() == sim.report


def test_unknown_tee_collateral_is_ignored_not_fatal():
    sim = simulate_snp()
    collateral = CollateralSet(json_documents=[("x.json", b"{}")]).merge(sim.collateral)
    assert verdict_of(sim, collateral=collateral).status == "trusted"


def test_a_leaked_vcek_key_cannot_mint_a_vcek_for_a_better_tcb():
    """A VCEK is a leaf: a certificate it signs (claiming a newer TCB) must not chain."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from enarx import attestation
    from enarx.attestation.simulate.pki import ECDSA_SHA384, issue_certificate

    old = simulate_snp(tcb=TcbVersion(1, 0, 1, 1))
    better = TcbVersion(9, 9, 9, 250)
    new_key = ec.generate_private_key(ec.SECP384R1())
    amd = "1.3.6.1.4.1.3704.1"
    exts = [attestation.der.extension(f"{amd}.{n}", attestation.der.integer(v)) for n, v in
            (("3.1", better.bootloader), ("3.2", better.tee), ("3.3", better.snp), ("3.8", better.microcode))]
    exts.append(attestation.der.extension(f"{amd}.4", old.parsed.chip_id))
    name = [("OU", "Engineering"), ("C", "US"), ("L", "Santa Clara"), ("ST", "CA"),
            ("O", "Advanced Micro Devices"), ("CN", "SEV-VCEK")]
    forged_cert = issue_certificate(subject=name, issuer=name, public_key=new_key.public_key(),
                                    signing_key=old.endorsement_key, algorithm=ECDSA_SHA384, serial=0,
                                    not_before=datetime.now(UTC) - timedelta(days=1),
                                    not_after=datetime.now(UTC) + timedelta(days=30), extensions=exts)
    report = dataclasses.replace(old.parsed, reported_tcb_raw=better.encode())
    signed = abi.encode_report(report, signed_only=True)[: abi.SIGNED_SIZE]
    r, s = decode_dss_signature(new_key.sign(signed, ec.ECDSA(hashes.SHA384())))
    forged_report = abi.with_signature(report, r, s).raw
    collateral = from_ders([forged_cert, old.endorsement_cert, old.pki.ask, old.pki.ark])
    verdict = Verifier(anchors=old.trust_anchors()).verify(forged_report, collateral)
    assert (verdict.status, verdict.reason) == ("failed", "chain"), verdict.checks[-1]
