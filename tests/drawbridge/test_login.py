"""`enarx user login` against the loopback OIDC issuer (device flow and client credentials), where the
token goes (0600 file, credential helper), and `user register`/`user info` with the stored token."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _fixtures import cli, issuer, pki, start_drawbridge

from conftest import ENARX
from enarx.drawbridge import login as oidc


def _env(tmp_path: Path, pki, **extra: str) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "ENARX_CA_BUNDLE": str(pki.ca_pem), **extra}


def test_device_flow_login_then_register(start_drawbridge, issuer, pki, tmp_path: Path) -> None:
    server = start_drawbridge()
    env = _env(tmp_path, pki)
    env.pop("ENARX_INSECURE_AUTH_TOKEN", None)
    proc = subprocess.Popen([*ENARX, "user", "login", "--oidc-issuer", issuer.url, "--oidc-audience", issuer.audience,
                             "--store-host", server.host], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    code = re.search(r"confirm the code (\w+)", line)
    assert code, line
    assert f"{issuer.url}/activate" in line
    time.sleep(0.3)  # the CLI is polling: authorization_pending until the user confirms
    issuer.approve(code[1], "carol-sub")  # what the user's browser does
    assert proc.wait(30) == 0, proc.stderr.read()
    rest = proc.stderr.read().decode()
    assert "Logged in as carol-sub" in rest
    stored = tmp_path / "config" / "enarx" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # the stored token works with the registry (no ENARX_INSECURE_AUTH_TOKEN), and the issuer confirms the sub
    result = subprocess.run([*ENARX, "user", "register", "--oidc-issuer", issuer.url, f"{server.host}/carol"],
                            env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"Registered user carol for carol-sub" in result.stderr
    info = subprocess.run([*ENARX, "user", "info", f"{server.host}/carol"], env=env, capture_output=True, timeout=60)
    assert info.returncode == 0 and b'"subject": "carol-sub"' in info.stdout


def test_client_credentials_login_with_a_credential_helper(start_drawbridge, issuer, pki, tmp_path: Path) -> None:
    server = start_drawbridge()
    issuer.add_client("ci-robot", "s3cret", "robot-sub")
    vault = tmp_path / "vault"
    helper = tmp_path / "helper"
    helper.write_text(f"#!{sys.executable}\nimport sys, pathlib\nv = pathlib.Path({str(vault)!r})\n"
                      "v.mkdir(exist_ok=True)\nf = v / sys.argv[2]\n"
                      "if sys.argv[1] == 'insert': f.write_text(sys.stdin.read())\n"
                      "elif sys.argv[1] == 'show':\n    sys.exit(1) if not f.exists() else print(f.read_text())\n")
    helper.chmod(0o700)
    env = _env(tmp_path, pki, ENARX_OIDC_CLIENT_SECRET="s3cret", ENARX_CREDENTIAL_HELPER=str(helper))
    result = subprocess.run([*ENARX, "user", "login", "--oidc-issuer", issuer.url, "--oidc-flow", "client",
                             "--oidc-client-id", "ci-robot", "--oidc-audience", issuer.audience, "--store-host",
                             server.host], env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"credential helper {helper}".encode() in result.stderr
    assert not (tmp_path / "config" / "enarx" / "credentials.json").exists()
    result = subprocess.run([*ENARX, "user", "register", "--oidc-issuer", issuer.url, f"{server.host}/robot"],
                            env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # a wrong secret: one line naming the refusal
    env["ENARX_OIDC_CLIENT_SECRET"] = "wrong"
    result = subprocess.run([*ENARX, "user", "login", "--oidc-issuer", issuer.url, "--oidc-flow", "client",
                             "--oidc-client-id", "ci-robot", "--store-host", server.host], env=env,
                            capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "Error: the issuer refused to issue a token: invalid_client (HTTP 401)"


def test_register_refuses_a_subject_the_issuer_denies(start_drawbridge, issuer, pki, tmp_path: Path) -> None:
    server = start_drawbridge()
    from joserfc.jwk import ECKey, KeySet

    impostor = KeySet([ECKey.generate_key("P-256", parameters={"kid": "ec-1"})])  # the issuer's kid, not its key
    forged = issuer.mint("alice-sub", keys=impostor)
    result = cli("user", "register", f"{server.host}/mallory", token=forged, ca=pki.ca_pem)
    assert result.returncode == 1
    assert b"refused registering user mallory" in result.stderr and b"(401)" in result.stderr


def test_registry_commands_without_a_token(start_drawbridge, pki, tmp_path: Path) -> None:
    server = start_drawbridge()
    result = cli("repo", "register", f"{server.host}/alice/x", ca=pki.ca_pem,
                 env={"XDG_CONFIG_HOME": str(tmp_path / "empty")})
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"Error: no token for {server.host}: log in with `enarx user login")
    result = cli("package", "info", "not-a-slug", ca=pki.ca_pem)
    assert result.returncode == 2 and b"expected HOST/USER/REPO:TAG" in result.stderr


def test_untrusted_registry_certificate_is_one_line(start_drawbridge, tmp_path: Path) -> None:
    server = start_drawbridge()
    result = cli("package", "info", f"{server.host}/alice/x:1.0.0")  # no CA bundle
    assert result.returncode == 1
    line = result.stderr.decode().strip()
    assert line == (f"Error: cannot verify the TLS certificate of {server.host} while reading alice/x:1.0.0: trust "
                    "its CA with --ca-bundle or ENARX_CA_BUNDLE")


def test_device_flow_unit(issuer) -> None:
    """The polling loop honours slow_down and gives up when the code expires (no real sleeping)."""
    doc = oidc.discover(issuer.url, None)
    told: list[str] = []
    approved = threading.Event()

    def sleep(seconds: float) -> None:
        if not approved.is_set():
            code = re.search(r"code (\w+)", told[0])
            issuer.approve(code[1], "dave-sub")
            approved.set()

    token = oidc.device_flow(doc, "enarx", issuer.audience, None, tell=told.append, sleep=sleep)
    assert oidc.unverified_subject(token) == "dave-sub"


@pytest.mark.parametrize("bad", ["", "a.b", "e30.e30.x"])
def test_unverified_subject_rejects_non_jwts(bad: str) -> None:
    from enarx.errors import EnarxError

    with pytest.raises(EnarxError):
        oidc.unverified_subject(bad)


def test_server_refuses_a_plain_http_issuer_off_loopback(pki) -> None:
    result = cli("drawbridge", "serve", "--port", "0", "--store", "/tmp", "--tls-crt", pki.crt, "--tls-key", pki.key,
                 "--oidc-issuer", "http://login.example.com/", "--oidc-audience", "x")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == ("Error: OIDC issuer: refusing to use the OIDC issuer url "
                                              "'http://login.example.com/': use https (plain http only to loopback)")


def test_publish_shows_progress_on_a_terminal(start_drawbridge, issuer, pki, tmp_path: Path) -> None:
    import pty

    server = start_drawbridge()
    token = issuer.mint("alice-sub")
    assert cli("user", "register", f"{server.host}/alice", token=token, ca=pki.ca_pem).returncode == 0
    assert cli("repo", "register", f"{server.host}/alice/big", token=token, ca=pki.ca_pem).returncode == 0
    package = tmp_path / "pkg"
    (package / "data").mkdir(parents=True)
    (package / "main.wasm").write_bytes(b"\0asm\x01\0\0\0")
    (package / "data" / "big.bin").write_bytes(os.urandom(6 << 20))
    main, secondary = pty.openpty()
    env = {**os.environ, "ENARX_CA_BUNDLE": str(pki.ca_pem), "ENARX_INSECURE_AUTH_TOKEN": token}
    proc = subprocess.Popen([*ENARX, "package", "publish", f"{server.host}/alice/big:1.0.0", str(package)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    assert proc.wait(60) == 0, seen
    assert b"publishing alice/big:1.0.0" in seen and b"100%" in seen
