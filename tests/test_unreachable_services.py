"""A Steward, Drawbridge, key broker or waiting keep where nothing listens: one line naming the URL, saying the
connection was refused and what to check (the server running, the URL given) — never a bare errno."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from conftest import assert_one_line_error, enarx, example
from enarx.kbs.client import KbsClient, KbsError

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused (and no one else can take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_keep_names_the_steward_it_cannot_reach(tmp_path, closed_port):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(f'steward = "http://127.0.0.1:{closed_port}/"\n' + STDIO)
    proc = enarx("run", "--wasmcfgfile", cfg, example("c", "hello"))
    assert proc.stdout == b""  # the workload never ran
    assert_one_line_error(proc, f"cannot reach the steward at http://127.0.0.1:{closed_port}/",
                          "connection refused", "check that the Steward is running there", "--steward")


def test_registry_commands_name_the_host_they_cannot_reach(closed_port):
    host = f"127.0.0.1:{closed_port}"
    for command in (("package", "info", f"{host}/alice/hello:0.1.0"),
                    ("deploy", f"{host}/alice/hello:0.1.0")):
        line = assert_one_line_error(enarx(*command), f"cannot reach the registry at {host}", "connection refused",
                                     "check that Drawbridge is running there")
        assert "Errno" not in line


def test_key_broker_client_names_the_url_it_cannot_reach(closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(KbsError, match=rf"^cannot reach the key broker at {url}: connection refused; check that "
                                       r"the key broker is running there and the --kbs URL$"):
        KbsClient(url).attest("snp", lambda report_data: {})


def test_push_names_the_address_where_no_keep_waits(tmp_path, closed_port):
    assert enarx("package", "keygen", tmp_path / "publisher.pem").returncode == 0
    (tmp_path / "content.key").write_bytes(b"")
    (tmp_path / "package").mkdir()
    proc = enarx("push", "--to", f"127.0.0.1:{closed_port}", "--key", tmp_path / "content.key",
                 "--publisher-key", tmp_path / "publisher.pem.pub", tmp_path / "package")
    assert_one_line_error(proc, f"cannot connect to 127.0.0.1:{closed_port}: Connection refused",
                          "check that a keep waits there", "--await-push")


def test_login_names_the_issuer_it_cannot_reach(tmp_path, closed_port):
    issuer = f"http://127.0.0.1:{closed_port}"
    proc = enarx("user", "login", "--oidc-issuer", issuer, "--store-host", "registry.test",
                 env={"XDG_CONFIG_HOME": str(tmp_path)})
    line = assert_one_line_error(proc, f"cannot reach the OIDC issuer at {issuer}/.well-known/openid-configuration",
                                 "connection refused", "check that the issuer is running there", "--oidc-issuer")
    assert "Errno" not in line
