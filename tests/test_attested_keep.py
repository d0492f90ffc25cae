"""End to end: a keep with `steward` in its Enarx.toml attests (simulated SEV-SNP) to a loopback Steward,
and its TLS listener then presents the Steward-issued chain with the verified claims."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import enarx
from conftest import example
from enarx.attestation.policy import Policy
from enarx.attestation.simulate.persistent import SimulatorPki
from enarx.backends.nil import NilBackend
from enarx.errors import ConfigError
from enarx.runtime.inmemory import InMemoryKeep
from enarx.steward.app import create_app
from enarx.steward.issuer import CertificateAuthority, read_claims
from enarx.steward.server import BackgroundServer
from enarx.steward.service import Steward, StewardConfig, load_insecure_anchors

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


@pytest.fixture(scope="module")
def simulator(tmp_path_factory) -> Path:
    """The simulator's test PKIs and the collateral a Steward needs (as `enarx attest simulate pki DIR`)."""
    pki = SimulatorPki(tmp_path_factory.mktemp("simulator"))
    pki.write_collateral()
    return pki.directory


def without_challenge(app):
    """An Enarx-like Steward: no GET /challenge route (404), the rest unchanged."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/challenge":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        await app(scope, receive, send)

    return wrapped


@contextmanager
def running_steward(simulator: Path, *, measurement: bytes | None = None, trust_simulator: bool = True,
                    require_challenge: bool = False, enarx_like: bool = False, tls: tuple[Path, Path] | None = None,
                    collateral: bool = True):
    policy = Policy.from_dict({"measurements": {"measurement": {"allow": [measurement.hex()]}}}) \
        if measurement else Policy.default()
    trusted = SimulatorPki(simulator).anchor_files() if trust_simulator else []
    anchors, intermediates = load_insecure_anchors(trusted)
    ca = CertificateAuthority.generate("Test Steward")
    steward = Steward(StewardConfig(ca=ca, policy=policy, policy_name="e2e", insecure_anchors=anchors,
                                    insecure_intermediates=intermediates, require_challenge=require_challenge,
                                    collateral=[simulator / "collateral"] if collateral else []))
    app = create_app(steward)
    crt, key = tls if tls else (None, None)
    server = BackgroundServer(without_challenge(app) if enarx_like else app, tls_crt=crt and str(crt),
                              tls_key=key and str(key)).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.port}/", ca
    finally:
        server.stop()


def run_keep(tmp_path: Path, url: str, simulator: Path, module: Path, listening: list, tee: str = "sev-snp",
             **kw) -> enarx.KeepResult:
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(f'steward = "{url}"\n' + STDIO +
                   '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n')
    errors: list[bytes] = []
    return enarx.run(module, enarx.KeepOptions(config_path=cfg, simulate_tee=tee,
                                               simulator_dir=str(simulator), **kw),
                     stdin=None, stdout=None, stderr=errors.append,
                     on_started=lambda info: listening.extend(info.get("listening", [])))


def start_keep(tmp_path: Path, url: str, simulator: Path, module: Path, tee: str = "sev-snp") -> int:
    """Run an attested TLS keep in the background (it stops at its timeout); its listening port."""
    listening: list = []
    outcome: dict = {}
    keep = threading.Thread(target=lambda: outcome.update(
        result=run_keep(tmp_path, url, simulator, module, listening, tee=tee, timeout=60)), daemon=True)
    keep.start()
    for _ in range(600):
        if listening or not keep.is_alive():
            break
        threading.Event().wait(0.05)
    assert listening, f"keep did not start: {outcome}"
    return listening[0]["port"]


def steward_tls(ca: CertificateAuthority) -> ssl.SSLContext:
    """A client trusting only the Steward CA (the Steward certifies the keep, not a host name)."""
    ctx = ssl.create_default_context(cadata=ca.cert.public_bytes(serialization.Encoding.PEM).decode())
    ctx.check_hostname = False
    return ctx


def test_attested_tls_echo_presents_steward_chain_with_claims(tmp_path, simulator):
    module = example("c", "echo_server")
    measurement = hashlib.sha384(module.read_bytes()).digest()
    with running_steward(simulator, measurement=measurement) as (url, ca):
        port = start_keep(tmp_path, url, simulator, module)
        with steward_tls(ca).wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="keep") as tls:
            tls.sendall(b"attested hello")
            assert tls.recv(100) == b"attested hello"
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        claims = read_claims(leaf)
        assert claims["tee"] == "sev-snp"
        assert claims["measurements"]["measurement"] == measurement.hex()
        assert claims["debug"] is False and claims["policy"] == "e2e"
        assert claims["test_anchor"] is True  # simulated evidence is marked as such


def test_wrong_measurement_stops_keep_with_reason(tmp_path, simulator):
    with running_steward(simulator, measurement=b"\x11" * 48) as (url, _ca):
        result = run_keep(tmp_path, url, simulator, example("c", "hello"), [])
    assert result.status == 1 and result.kind == "error"
    assert "steward refused the keep (HTTP 403)" in result.error
    assert "measurement" in result.error
    assert result.started == {}  # the workload never ran


SNP_REPORT_SIZE = 1184
MEASUREMENT_OFFSET = 0x90  # inside the signed body [0, 0x2A0) of the SEV-SNP report


def test_tampered_evidence_stops_keep(tmp_path, simulator, monkeypatch):
    from enarx.runtime.attest import simulated

    original = simulated.SimulatedSnpEvidence.extension

    def tampered(self, report_data):
        oid, value = original(self, report_data)
        value = bytearray(value)
        report_start = len(value) - SNP_REPORT_SIZE  # the report is the container's last field
        assert bytes(value[report_start - 4:report_start]) == b"\x04\x82\x04\xa0"  # OCTET STRING (1184)
        value[report_start + MEASUREMENT_OFFSET] ^= 0x01  # one bit of the measurement
        return oid, bytes(value)

    monkeypatch.setattr(simulated.SimulatedSnpEvidence, "extension", tampered)
    # the keep runs in a thread of this process, so it sees the patch (a process keep may be spawned afresh)
    monkeypatch.setattr(NilBackend, "launch", lambda self, request=None, module=b"": InMemoryKeep())
    with running_steward(simulator) as (url, _ca):
        result = run_keep(tmp_path, url, simulator, example("c", "hello"), [])
    assert result.status == 1 and result.started == {}
    assert "steward refused the keep (HTTP 403)" in result.error
    assert "reason: signature" in result.error and "snp.report-signature" in result.error, result.error


@pytest.mark.parametrize("tee", ["sev-snp", "tdx"])
def test_untrusted_simulator_is_refused_saying_so(tmp_path, simulator, tee):
    with running_steward(simulator, trust_simulator=False) as (url, _ca):
        result = run_keep(tmp_path, url, simulator, example("c", "hello"), [], tee=tee)
    assert result.status == 1 and "steward refused the keep (HTTP 403)" in result.error
    # the simulator's test root is no vendor root: the chain check refuses it, saying so plainly
    assert re.search(r"failed: \S*chain\.\S*.* — reason: (chain|untrusted-root)$", result.error), result.error
    assert "test or simulated" in result.error and "trusted explicitly" in result.error, result.error


def test_nil_keep_refused_unless_insecure_kvm(tmp_path, simulator):
    cfg = tmp_path / "Enarx.toml"
    with running_steward(simulator) as (url, _ca):
        cfg.write_text(f'steward = "{url}"\n' + STDIO)
        result = enarx.run(example("c", "hello"), enarx.KeepOptions(config_path=cfg), stdout=None, stderr=None)
    assert result.status == 1 and "steward refused the keep (HTTP 403)" in result.error
    assert "reason: kvm-refused" in result.error and "--insecure-accept-kvm" in result.error, result.error


def test_keep_binds_the_stewards_challenge(tmp_path, simulator):
    module = example("c", "echo_server")
    with running_steward(simulator, require_challenge=True) as (url, ca):
        port = start_keep(tmp_path, url, simulator, module)
        with steward_tls(ca).wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="keep") as tls:
            assert read_claims(x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)))["tee"] == "sev-snp"


def test_keep_falls_back_to_the_enarx_binding_when_the_steward_offers_no_challenge(tmp_path, simulator):
    with running_steward(simulator, enarx_like=True) as (url, _ca):
        result = run_keep(tmp_path, url, simulator, example("c", "hello"), [])
    assert result.status == 0, result.error


@pytest.fixture(scope="module")
def private_tls(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 under it: (ca.pem, server.crt, server.key)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import ip_address

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("private-ca")
    now = datetime.now(UTC)
    ca = CertificateAuthority.generate("Private Test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "steward.internal")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.pem)
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    return directory / "ca.pem", directory / "server.crt", directory / "server.key"


def test_keep_verifies_an_https_steward_and_trusts_a_private_ca_only_when_told(tmp_path, simulator, private_tls,
                                                                              monkeypatch):
    ca_pem, crt, key = private_tls
    with running_steward(simulator, tls=(crt, key)) as (url, _ca):
        assert url.startswith("https://")
        refused = run_keep(tmp_path, url, simulator, example("c", "hello"), [])
        assert refused.status == 1 and "cannot reach the steward" in refused.error
        assert "CERTIFICATE_VERIFY_FAILED" in refused.error and "--ca-bundle" in refused.error, refused.error
        assert run_keep(tmp_path, url, simulator, example("c", "hello"), [], ca_bundle=str(ca_pem)).status == 0
        monkeypatch.setenv("ENARX_CA_BUNDLE", str(ca_pem))
        assert run_keep(tmp_path, url, simulator, example("c", "hello"), []).status == 0


def test_enarx_run_ca_bundle_reaches_the_keep(tmp_path, simulator, private_tls):
    from conftest import enarx as enarx_cli

    ca_pem, crt, key = private_tls
    cfg = tmp_path / "Enarx.toml"
    with running_steward(simulator, tls=(crt, key)) as (url, _ca):
        cfg.write_text(f'steward = "{url}"\n' + STDIO)
        base = ["run", "--wasmcfgfile", cfg, "--simulate-tee", "sev-snp", "--simulator-pki", simulator]
        without = enarx_cli(*base, example("c", "hello"))
        assert without.returncode == 1 and b"CERTIFICATE_VERIFY_FAILED" in without.stderr
        with_bundle = enarx_cli(*base[:1], "--ca-bundle", ca_pem, *base[1:], example("c", "hello"))
        assert with_bundle.returncode == 0, with_bundle.stderr
        assert b"Hello" in with_bundle.stdout
        missing = enarx_cli(*base[:1], "--ca-bundle", tmp_path / "nope.pem", *base[1:], example("c", "hello"))
        assert missing.returncode != 0 and b"nope.pem" in missing.stderr


def test_plain_http_steward_only_on_loopback(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('steward = "http://attest.example.com/"\n' + STDIO)
    with pytest.raises(ConfigError, match=r"steward: refusing to use the steward url .*use https"):
        enarx.run(example("c", "hello"), enarx.KeepOptions(config_path=cfg), stdout=None, stderr=None)


@pytest.mark.parametrize("tee,missing", [("tdx", ("TCB info", "QE identity", "CRL")), ("sgx", ("QE identity",))])
def test_simulated_intel_keeps_need_the_stewards_collateral(tmp_path, simulator, tee, missing):
    """Finding 6: a TDX keep sends only its quote, an SGX keep no QE identity (Enarx's envelope has no field for
    it): without --collateral the Steward refuses them, naming what is missing."""
    with running_steward(simulator, collateral=False) as (url, _ca):
        result = run_keep(tmp_path, url, simulator, example("c", "hello"), [], tee=tee)
    assert result.status == 1 and "steward refused the keep (HTTP 403)" in result.error
    for item in missing:
        assert f"missing collateral: {item}" in result.error, result.error


@pytest.mark.parametrize("tee,claim,digest", [("tdx", "mrtd", hashlib.sha384), ("sgx", "mrenclave", hashlib.sha256)])
def test_simulated_intel_keeps_are_certified_with_their_measurement(tmp_path, simulator, tee, claim, digest):
    module = example("c", "echo_server")
    with running_steward(simulator) as (url, ca):
        port = start_keep(tmp_path, url, simulator, module, tee=tee)
        with steward_tls(ca).wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="keep") as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    claims = read_claims(leaf)
    assert claims["tee"] == tee
    assert claims["measurements"][claim] == digest(module.read_bytes()).hexdigest()
