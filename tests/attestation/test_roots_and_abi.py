"""Built-in roots (pins, corpus match, self-signatures), the SNP byte layout on real reports, collateral loading."""

from __future__ import annotations

import hashlib
import json

import pytest
from _corpus import CORPORA, HAVE_CORPUS, NO_CORPUS
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enarx.attestation import roots
from enarx.attestation.collateral import CollateralError, certificates_of, crls_of, load_collateral
from enarx.attestation.model import MalformedEvidence
from enarx.attestation.pki import split_pem
from enarx.attestation.snp.abi import TcbVersion, parse_report

corpus = [pytest.mark.corpus, pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)]


def test_every_shipped_root_matches_its_pin_and_chains():
    for name in roots.PINS:
        cert = roots.load(name)
        assert hashlib.sha256(cert.der).hexdigest() == roots.PINS[name]
    for product in roots.PRODUCTS:
        ark = roots.ark(product)
        assert ark.self_issued and ark.signed_by(ark), product
        assert roots.ask(product).signed_by(ark) and roots.asvk(product).signed_by(ark), product
        assert f"ARK-{product}" in ark.subject
    for root, name in ((roots.intel_sgx_root(), "Intel SGX Root CA"), (roots.aws_nitro_root(), "aws.nitro-enclaves"),
                       (roots.nvidia_device_identity_ca(), "NVIDIA Device Identity CA")):
        assert root.signed_by(root) and root.name == name


def test_anchors_are_roots_only_each_bound_to_its_formats():
    anchors = roots.builtin_anchors()
    assert len(anchors.anchors) == 6 and anchors.test == []
    assert not any("SEV-" in a.cert.subject for a in anchors.anchors), "ASK/ASVK must not be trust anchors"
    bound = {a.name: (sorted(a.formats), a.product) for a in anchors.anchors}
    assert bound == {"ARK-Milan": (["snp"], "Milan"), "ARK-Genoa": (["snp"], "Genoa"), "ARK-Turin": (["snp"], "Turin"),
                     "Intel SGX Root CA": (["sgx", "tdx"], None), "aws.nitro-enclaves": (["nitro"], None),
                     "NVIDIA Device Identity CA": (["nvidia"], None)}
    for fmt in ("snp", "sgx", "tdx", "nitro", "nvidia"):
        assert all(fmt in a.formats for a in anchors.for_format(fmt))


def test_test_anchors_bind_by_name_and_key_or_by_an_explicit_format(tmp_path):
    from enarx.attestation.anchors import AnchorError, load_anchor_file
    from enarx.attestation.simulate.intel import simulate_sgx
    from enarx.attestation.simulate.pki import TestCA

    intel = simulate_sgx()
    path = tmp_path / "intel.pem"
    path.write_bytes(intel.files["trusted_root_ca.pem"])
    (anchor,) = load_anchor_file(path)
    assert anchor.test and anchor.formats == {"sgx", "tdx"}
    (anchor,) = load_anchor_file(f"nitro={path}")
    assert anchor.formats == {"nitro"}
    # a root whose name fits no vendor must be named; a vendor name with another kind of key is not enough
    plain = tmp_path / "plain.pem"
    plain.write_bytes(TestCA.root([("CN", "My Test Root")]).pem())
    with pytest.raises(AnchorError, match="snp=FILE"):
        load_anchor_file(plain)
    assert load_anchor_file(f"sgx,tdx={plain}")[0].formats == {"sgx", "tdx"}
    rsa_named_intel = tmp_path / "rsa.pem"
    rsa_named_intel.write_bytes(TestCA.root([("CN", "Intel SGX Root CA")], algorithm="rsa-pss-sha384").pem())
    with pytest.raises(AnchorError):
        load_anchor_file(rsa_named_intel)
    with pytest.raises(AnchorError, match="unknown evidence format"):
        load_anchor_file(f"snp,vibes={path}")


def test_tampered_root_is_refused(monkeypatch):
    roots.load.cache_clear()
    monkeypatch.setitem(roots.PINS, "amd_milan_ark.pem", "00" * 32)
    with pytest.raises(roots.RootIntegrityError):
        roots.load("amd_milan_ark.pem")
    monkeypatch.undo()
    roots.load.cache_clear()
    assert roots.ark("Milan")


@pytest.mark.parametrize("mark", [0])
@pytest.mark.corpus
@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
def test_builtin_roots_equal_the_corpus_certificates(mark):
    corpus_fps = set()
    for path in (CORPORA / "sev-snp" / "ca").glob("*.pem"):
        corpus_fps |= {hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
                       for c in x509.load_pem_x509_certificates(path.read_bytes())}
    intel = x509.load_der_x509_certificate((CORPORA / "intel-ca" / "intel_sgx_root_ca.der").read_bytes())
    corpus_fps.add(hashlib.sha256(intel.public_bytes(serialization.Encoding.DER)).hexdigest())
    for pem_file in ("aws-nitro/aws_nitro_root.pem", "nvidia/hopper/cert_chain.pem"):
        corpus_fps |= {hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
                       for c in x509.load_pem_x509_certificates((CORPORA / pem_file).read_bytes())}
    assert set(roots.PINS.values()) <= corpus_fps


@pytest.mark.corpus
@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
@pytest.mark.parametrize("path", sorted(p.relative_to(CORPORA).as_posix() for p in (CORPORA / "sev-snp").glob("*/report*.bin")) if HAVE_CORPUS else [])
def test_real_reports_parse_and_match_their_vcek(path):
    data = (CORPORA / path).read_bytes()
    report = parse_report(data)
    assert report.version in (2, 3, 5) and report.signature_algo == 1
    assert report.raw == data
    # independent read of the endorsement key's TCB extensions with asn1crypto
    from asn1crypto import core
    from asn1crypto import x509 as a

    folder = (CORPORA / path).parent
    leaf = next(p for p in sorted(folder.iterdir()) if p.name.startswith(("vcek", "vlek")) and "bad" not in p.name)
    raw = leaf.read_bytes()
    if raw.startswith(b"-----"):
        raw = split_pem(raw)[0][1]
    exts = {e["extn_id"].dotted: e["extn_value"].contents for e in a.Certificate.load(raw)["tbs_certificate"]["extensions"]}
    spl = lambda n: core.Integer.load(exts[f"1.3.6.1.4.1.3704.1.3.{n}"]).native
    assert report.reported_tcb == TcbVersion(spl(1), spl(2), spl(3), spl(8))


def test_turin_and_milan_tcb_layouts():
    raw = int.from_bytes(bytes([1, 2, 3, 4, 5, 6, 7, 8]), "little")
    assert TcbVersion.decode(raw) == TcbVersion(bootloader=1, tee=2, snp=7, microcode=8)
    assert TcbVersion.decode(raw, turin=True) == TcbVersion(bootloader=2, tee=3, snp=4, microcode=8, fmc=1)
    for tcb in (TcbVersion(9, 8, 7, 6), TcbVersion(9, 8, 7, 6, fmc=5)):
        assert TcbVersion.decode(tcb.encode(), turin=tcb.fmc is not None) == tcb


@pytest.mark.parametrize("size", [0, 100, 1183, 1185, 2000])
def test_wrong_sizes_are_malformed(size):
    with pytest.raises(MalformedEvidence):
        parse_report(b"\x02" + bytes(size - 1) if size else b"")


def test_collateral_loader(tmp_path):
    from enarx.attestation.simulate.snp import simulate_snp

    sim = simulate_snp(tmp_path / "sim")
    (tmp_path / "sim" / "README").write_text("not collateral")
    (tmp_path / "sim" / "ask.pem").write_text("truncated download")
    loaded = load_collateral([tmp_path / "sim"])
    assert {c.name for c in certificates_of(loaded)} >= {"SEV-VCEK", "SEV-Milan", "ARK-Milan"}
    assert len(crls_of(loaded)) == 1
    # a file named as collateral that is not is warned about; the report and a README beside it are not
    skipped = [w for w in loaded.warnings if "skipped" in w]
    assert skipped == [f"skipped {tmp_path / 'sim' / 'ask.pem'}: not a certificate, CRL or JSON collateral document"]
    # path#field: a PEM chain stored in a JSON field
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps({"outer": {"chain": sim.chain_pem.decode()}, "n": 1}))
    chain = load_collateral([f"{doc}#outer.chain"])
    assert [c.name for c in certificates_of(chain)] == ["SEV-Milan", "ARK-Milan"]
    with pytest.raises(CollateralError):
        load_collateral([f"{doc}#missing"])
    with pytest.raises(CollateralError):
        load_collateral([f"{doc}#n"])
    with pytest.raises(CollateralError):
        load_collateral([tmp_path / "sim" / "README"])
    # a VCEK with serial 0 is classified even if it must be kept as raw DER
    only = load_collateral([tmp_path / "sim" / "vcek.der"])
    assert [c.serial for c in certificates_of(only)] == [0]
