"""VM keeps behave like the nil keep: one suite over both backends (kvm under QEMU's TCG emulator here).

Every kvm test boots a real microVM with the real guest image, so the suite keeps their number small:
one boot per behaviour, and each example language once.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from conftest import ENARX, enarx, example
from test_attested_keep import running_steward, steward_tls

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


@pytest.fixture(params=["nil", "kvm"])
def backend(request) -> tuple[str, dict[str, str]]:
    """(backend name, environment for the CLI)."""
    if request.param == "kvm":
        return "kvm", request.getfixturevalue("vm_env")
    return "nil", {}


def run(backend: tuple[str, dict[str, str]], *args, **kw) -> subprocess.CompletedProcess[bytes]:
    name, env = backend
    return enarx("run", "--backend", name, *args, env=env, timeout=300, **kw)


def workload_stderr(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    """stderr without the kvm keep's "emulated" warning line."""
    return b"".join(line for line in proc.stderr.splitlines(keepends=True) if b"TCG emulator" not in line)


# -- the same behaviour on both backends -------------------------------------------------------------------
def test_output(backend):
    proc = run(backend, example("c", "hello"))
    assert (proc.returncode, proc.stdout, workload_stderr(proc)) == (0, b"Hello, world!\n", b"")


def test_stdin(backend):
    data = os.urandom(300_000)
    proc = run(backend, example("c", "cat"), input=data)
    assert proc.returncode == 0 and proc.stdout == data


def test_exit_code(backend):
    proc = run(backend, example("c", "exit_code"), "42")
    assert proc.returncode == 42 and workload_stderr(proc) == b"exiting with 42\n"


def test_trap(backend):
    proc = run(backend, example("c", "trap"))
    assert proc.returncode == 134
    assert b"Error: workload trapped: unreachable instruction executed" in proc.stderr


@contextmanager
def serving_keep(backend, tmp_path: Path, module: Path, toml: str, *options: str):
    """A keep serving in the background; yields (process, host address, port) from its listening line."""
    name, env = backend
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(toml)
    proc = subprocess.Popen([*ENARX, "run", "--backend", name, *options, "--wasmcfgfile", str(cfg), str(module)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env})
    try:
        for line in proc.stderr:
            if match := re.search(rb"listening on ([\d.]+):(\d+)$", line.strip()):
                break
            assert b"Error" not in line, line
        else:
            raise AssertionError(f"the keep ended without listening: {proc.wait()}")
        yield proc, match.group(1).decode(), int(match.group(2))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_listen_tcp_reached_from_the_host(backend, tmp_path):
    toml = STDIO + '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\naddr = "127.0.0.1"\nport = 0\n'
    with serving_keep(backend, tmp_path, example("c", "echo_server"), toml) as (_proc, addr, port):
        assert addr == "127.0.0.1" and port != 0  # the port the host picked and reports
        payload = b"through the keep's listener\n" * 1000
        with socket.create_connection((addr, port), timeout=60) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received = b"".join(iter(lambda: sock.recv(65536), b""))
        assert received == payload


def test_connect_out(backend, tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(b"".join(iter(lambda: conn.recv(4096), b"")))
            conn.sendall(b"the host answered\n")

    threading.Thread(target=serve, daemon=True).start()
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(STDIO + '[[files]]\nkind = "connect"\nname = "server"\nprot = "tcp"\nhost = "localhost"\n'
                   f"port = {server.getsockname()[1]}\n")
    proc = run(backend, "--wasmcfgfile", cfg, example("c", "client"))
    server.close()
    assert proc.returncode == 0, proc.stderr
    assert got == [b"hello from the keep\n"] and proc.stdout == b"the host answered\n"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory) -> Path:
    from enarx.runtime.attest.simulated import load_or_create_intel_pki, load_or_create_snp_pki

    directory = tmp_path_factory.mktemp("simulator")
    load_or_create_snp_pki(directory)
    load_or_create_intel_pki(directory)
    return directory


def test_steward_attestation_with_simulated_evidence(backend, tmp_path, simulator):
    module = example("c", "echo_server")
    measurement = hashlib.sha384(module.read_bytes()).digest()
    with running_steward(simulator, measurement=measurement) as (url, ca):
        toml = (f'steward = "{url}"\n' + STDIO +
                '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tls"\naddr = "127.0.0.1"\nport = 0\n')
        options = ("--simulate-tee", "sev-snp", "--simulator-pki", str(simulator))
        with serving_keep(backend, tmp_path, module, toml, *options) as (_proc, addr, port), \
                steward_tls(ca).wrap_socket(socket.create_connection((addr, port), timeout=60),
                                            server_hostname="keep") as tls:
            tls.sendall(b"attested hello")
            assert tls.recv(100) == b"attested hello"
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    from enarx.steward.issuer import read_claims

    claims = read_claims(leaf)
    assert claims["tee"] == "sev-snp" and claims["measurements"]["measurement"] == measurement.hex()
    assert claims["test_anchor"] is True

