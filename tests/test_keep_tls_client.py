"""A keep's TLS `connect`: it checks the server's name, and an attested keep proves itself to the server with
its Steward-issued certificate (each killed a mutant that survived: see docs/mutants.md)."""

from __future__ import annotations

import datetime as dt
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import enarx
from conftest import assert_one_line_error, example
from conftest import enarx as run_cli
from enarx.steward.issuer import read_claims
from test_attested_keep import running_steward, simulator  # noqa: F401 - simulator is a fixture
from test_network import _ca, _leaf, connect_toml, peer_server


def _server_context(tmp_path, name: str, *, client_ca: bytes | None = None) -> ssl.SSLContext:
    ca = _ca(tmp_path, "private-ca")
    cert, key = _leaf(tmp_path, ca, name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca.decode())
    return ctx


def _elsewhere_context(tmp_path) -> ssl.SSLContext:
    """A server whose certificate, from the private CA, is for elsewhere.example only."""
    ca_key, ca_cert = _ca(tmp_path, "private-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elsewhere.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("elsewhere.example")]), False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "elsewhere.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "elsewhere.pem")
    return ctx


def test_connect_refuses_a_server_certified_for_another_name(tmp_path):
    """The private CA vouches for the certificate, but it names elsewhere.example, not the host dialled."""
    with peer_server(_elsewhere_context(tmp_path)) as (port, _info):
        cfg = tmp_path / "Enarx.toml"
        cfg.write_text(connect_toml(port, "tls", f'ca = "{tmp_path}/private-ca.pem"\n'))
        proc = run_cli("run", "--wasmcfgfile", cfg, example("c", "client"))
    assert_one_line_error(proc, "Hostname mismatch")
    assert proc.stdout == b""


def test_attested_keep_presents_its_steward_certificate_when_connecting(tmp_path, simulator):  # noqa: F811
    """A server that serves only clients certified by the Steward serves the attested keep, and sees its claims."""
    with running_steward(simulator) as (url, ca):
        steward_ca = ca.cert.public_bytes(serialization.Encoding.PEM)
        with peer_server(_server_context(tmp_path, "localhost", client_ca=steward_ca)) as (port, info):
            cfg = tmp_path / "Enarx.toml"
            cfg.write_text(f'steward = "{url}"\n' + connect_toml(port, "tls", f'ca = "{tmp_path}/private-ca.pem"\n'))
            out: list[bytes] = []
            result = enarx.run(example("c", "client"), enarx.KeepOptions(
                config_path=cfg, simulate_tee="sev-snp", simulator_dir=str(simulator), timeout=60),
                stdin=None, stdout=out.append, stderr=None)
    assert (result.status, result.error) == (0, None)
    assert b"".join(out) == b"got: hello from the keep\n"
    assert "error" not in info, info
    claims = read_claims(x509.load_der_x509_certificate(info["peer_cert"]))
    assert claims["tee"] == "sev-snp" and claims["test_anchor"] is True
