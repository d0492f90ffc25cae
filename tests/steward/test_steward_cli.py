"""`enarx steward serve` option handling (the server itself is exercised in test_steward_http)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from enarx.cli.steward import steward


def test_help_lists_options() -> None:
    out = CliRunner().invoke(steward, ["serve", "--help"]).output
    for opt in ("--addr", "--port", "--key", "--crt", "--generate-ca", "--policy", "--san", "--tls-crt",
                "--tls-key", "--verify-at", "--insecure-accept-kvm", "--insecure-trust-anchor", "--validity"):
        assert opt in out


def test_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(steward, ["serve"]).exit_code == 2  # no CA
    assert runner.invoke(steward, ["serve", "--generate-ca", "x", "--no-plain"]).exit_code == 2
    result = runner.invoke(steward, ["serve", "--generate-ca", "x", "--verify-at", "yesterday-ish"])
    assert result.exit_code == 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_subprocess_plain_and_tls(tmp_path) -> None:
    import ipaddress
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime, timedelta

    import httpx
    import pytest
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from enarx import cabundle

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    port, tls_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "enarx", "steward", "serve", "--addr", "127.0.0.1",
                             "--port", str(port), "--generate-ca", "steward.test", "--write-ca", str(tmp_path / "ca"),
                             "--tls-crt", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
                             "--tls-port", str(tls_port)], stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        tls_url = f"https://127.0.0.1:{tls_port}/"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(tls_url)  # a server certificate nobody vouches for is refused …
        trusted = cabundle.client_context(str(tmp_path / "tls.crt"))  # … and accepted once its CA is given
        assert httpx.get(tls_url, verify=trusted).status_code == 200
        assert httpx.get(tls_url + "ca", verify=trusted).content == (tmp_path / "ca" / "ca.crt").read_bytes()
        ca = httpx.get(f"http://127.0.0.1:{port}/ca").content
        assert ca == (tmp_path / "ca" / "ca.crt").read_bytes()
        resp = httpx.post(f"http://127.0.0.1:{port}/", content=b"junk",
                          headers={"content-type": "application/pkcs10"})
        assert resp.status_code == 400
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    import json

    decisions = [json.loads(line) for line in err.decode().splitlines() if '"steward.decision"' in line]
    assert decisions and decisions[0]["outcome"] == "refused" and decisions[0]["reason"] == "malformed-csr"


def test_serve_with_two_workers_on_an_ephemeral_port() -> None:
    import re
    import subprocess
    import sys

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "enarx", "steward", "serve", "--addr", "127.0.0.1", "--port", "0",
                             "--generate-ca", "steward.test", "--workers", "2"], stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline().decode()
        port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line).group(1))
        statuses = set()
        for _ in range(40):
            try:
                statuses.add(httpx.post(f"http://127.0.0.1:{port}/", content=b"junk",
                                        headers={"content-type": "application/pkcs10"}).status_code)
            except httpx.TransportError:  # workers still starting
                import time

                time.sleep(0.05)
        assert statuses == {400}
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(kids) == 2
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    for kid in kids:  # SIGTERM reached every worker
        try:
            state = Path(f"/proc/{kid}/stat").read_text().split()[2]
        except OSError:
            continue
        assert state == "Z", f"worker {kid} still running"


# --- CA files (--write-ca) and listener errors ------------------------------------------------------------


def _enarx(*args: str, timeout: float = 30) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "enarx", *args], capture_output=True, text=True, timeout=timeout)


def test_ca_files_are_0600_and_never_replaced_without_force(tmp_path: Path) -> None:
    import stat

    import pytest

    from enarx.steward.issuer import CaError, CertificateAuthority

    ca = CertificateAuthority.generate("one")
    key, crt = ca.write(tmp_path / "ca")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    before = key.read_bytes()
    with pytest.raises(CaError, match=r"ca\.key already exists: pass --force"):
        CertificateAuthority.generate("two").write(tmp_path / "ca")
    assert key.read_bytes() == before and crt.read_bytes() == ca.pem
    assert [p.name for p in (tmp_path / "ca").iterdir() if p.name.startswith(".")] == []  # no staging files left
    CertificateAuthority.generate("two").write(tmp_path / "ca", force=True)
    assert key.read_bytes() != before and b"BEGIN CERTIFICATE" in crt.read_bytes()


def test_force_never_keeps_a_loose_mode(tmp_path: Path) -> None:
    import stat

    from enarx.steward.issuer import CertificateAuthority

    directory = tmp_path / "ca"
    directory.mkdir()
    (directory / "ca.key").write_text("old")
    (directory / "ca.key").chmod(0o644)
    CertificateAuthority.generate("x").write(directory, force=True)
    assert stat.S_IMODE((directory / "ca.key").stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in (directory / "ca.key").read_bytes()


def test_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    import pytest

    from enarx.steward.issuer import CaError, CertificateAuthority

    directory = tmp_path / "ca"
    directory.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o644)
    (directory / "ca.key").symlink_to(victim)
    with pytest.raises(CaError, match="already exists"):
        CertificateAuthority.generate("x").write(directory)
    assert (directory / "ca.key").is_symlink() and victim.read_text() == "precious"
    dangling = tmp_path / "ca2"
    dangling.mkdir()
    (dangling / "ca.key").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(CaError, match="already exists"):
        CertificateAuthority.generate("x").write(dangling)
    assert not (tmp_path / "would-be-created").exists()
    CertificateAuthority.generate("x").write(directory, force=True)
    assert not (directory / "ca.key").is_symlink() and victim.read_text() == "precious"
    assert b"PRIVATE KEY" in (directory / "ca.key").read_bytes()


def test_write_ca_needs_generate_ca_and_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("x")
    result = _enarx("steward", "serve", "--key", str(tmp_path / "k.pem"), "--crt", str(tmp_path / "k.pem"),
                    "--write-ca", str(tmp_path / "ca"))
    assert result.returncode == 2 and "--write-ca saves a generated CA: it needs --generate-ca" in result.stderr
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca.crt").write_text("mine")
    result = _enarx("steward", "serve", "--generate-ca", "x", "--addr", "127.0.0.1", "--port", "0",
                    "--write-ca", str(tmp_path / "ca"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "ca.crt already exists: pass --force" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "ca" / "ca.crt").read_text() == "mine" and not (tmp_path / "ca" / "ca.key").exists()


def test_listener_errors_name_the_address_and_what_to_do() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _enarx("steward", "serve", "--generate-ca", "x", "--addr", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert (f"Error: cannot listen on 127.0.0.1:{port}: the port is already in use (another Steward?): "
            "stop that process or choose another --port") in result.stderr
    result = _enarx("steward", "serve", "--generate-ca", "x", "--addr", "192.0.2.1", "--port", "0")
    assert result.returncode == 1 and "cannot listen on 192.0.2.1:0: the address is not one of this machine's" \
        in result.stderr
    result = _enarx("steward", "serve", "--generate-ca", "x", "--addr", "no such host!", "--port", "0")
    assert result.returncode == 1 and "cannot listen on no such host!:0: 'no such host!' is not an address" \
        in result.stderr
    result = _enarx("steward", "serve", "--generate-ca", "x", "--port", "70000")
    assert result.returncode == 2 and "--port" in result.stderr and "70000" in result.stderr


def test_insecure_trust_anchor_named_for_formats(tmp_path, monkeypatch) -> None:
    """`--insecure-trust-anchor snp=FILE` binds the anchor to the formats named; a misspelt format or a
    missing file is a usage error before anything listens."""
    from enarx.attestation.simulate.persistent import SimulatorPki
    from enarx.steward import server

    pki = SimulatorPki(tmp_path / "sim")
    pki.snp()
    chain = pki.directory / "snp" / "chain.pem"
    started: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda steward, *_a, **_k: started.append(steward))
    runner = CliRunner()
    base = ["serve", "--generate-ca", "x", "--port", "0"]

    ok = runner.invoke(steward, [*base, "--insecure-trust-anchor", f"snp,tdx={chain}"])
    assert ok.exit_code == 0, ok.output
    anchors = started[0].config.insecure_anchors
    assert anchors and all(a.formats == frozenset({"snp", "tdx"}) for a in anchors)

    typo = runner.invoke(steward, [*base, "--insecure-trust-anchor", f"sev={chain}"])
    assert typo.exit_code == 2 and "unknown evidence format sev" in typo.output
    missing = runner.invoke(steward, [*base, "--insecure-trust-anchor", f"snp={tmp_path / 'nope.pem'}"])
    assert missing.exit_code == 2 and "no such file" in missing.output
    assert len(started) == 1
