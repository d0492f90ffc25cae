"""VM keeps behave like the nil keep: one suite over both backends (kvm under QEMU's TCG emulator here).

Every kvm test boots a real microVM with the real guest image, so the suite keeps their number small:
one boot per behaviour, and each example language once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from conftest import ENARX, assert_one_line_error, enarx, example
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


def one_line_error(proc: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    """The CLI's one ``Error:`` line, after the kvm keep's "emulated, no isolation" warning line."""
    assert proc.stderr.startswith(b"warning: the kvm keep runs under QEMU's TCG emulator (emulated, no isolation)\n")
    return assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout,
                                                             workload_stderr(proc)), *fragments)


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
            if match := re.search(rb"listening on (\[[0-9a-f:]+\]|[\d.]+):(\d+)$", line.strip()):
                break
            assert b"Error" not in line, line
        else:
            raise AssertionError(f"the keep ended without listening: {proc.wait()}")
        yield proc, match.group(1).decode().strip("[]"), int(match.group(2))
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


def test_listen_on_every_address_of_both_families(backend, tmp_path):
    """`addr = "::"` is reached over IPv6 and IPv4 alike, as a nil keep's dual-stack listener is (QEMU forwards
    IPv4 only: the host relays IPv6 itself)."""
    toml = STDIO + '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\naddr = "::"\nport = 0\n'
    with serving_keep(backend, tmp_path, example("c", "echo_server"), toml) as (_proc, addr, port):
        assert addr == "::"
        for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(60)
                sock.connect((host, port))
                sock.sendall(f"over {host}\n".encode())
                sock.shutdown(socket.SHUT_WR)
                assert b"".join(iter(lambda s=sock: s.recv(65536), b"")) == f"over {host}\n".encode()


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
    from enarx.attestation.simulate.persistent import SimulatorPki

    pki = SimulatorPki(tmp_path_factory.mktemp("simulator"))
    pki.write_collateral()
    return pki.directory


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
    assert claims["test_anchor"] is True and claims["insecure"] is True
    # the certificate itself says the keep was not isolated, however genuine its (simulated) evidence looked
    expected = {"nil": "process, no isolation", "kvm": "emulated, no isolation"}[backend[0]]
    assert claims["isolation"] == expected



def test_writable_dirs_are_the_hosts_own(backend, tmp_path):
    """A writable `dir` entry and a `--dir` are the host's directories themselves (a kvm keep shares them over
    virtiofs): what the workload writes is there on the host, and what the host put there is read."""
    out, extra = tmp_path / "out", tmp_path / "extra"
    out.mkdir()
    extra.mkdir()
    (out / "from-host.txt").write_text("put there by the host\n")
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('args = ["/out"]\n' + STDIO + f'[[files]]\nkind = "dir"\npath = "{out}"\nname = "/out"\n'
                   "writable = true\n")
    proc = run(backend, "--wasmcfgfile", cfg, "--dir", f"{extra}::/extra", example("c", "files"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"written by wasm\nentry: from-host.txt\nentry: hello.txt\n"
    assert (out / "hello.txt").read_text() == "written by wasm\n"  # on the host, after the keep ended
    proc = run(backend, "--dir", f"{extra}::/extra", example("c", "files"), "/extra")
    assert proc.returncode == 0, proc.stderr
    assert (extra / "hello.txt").read_text() == "written by wasm\n"
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_virtiofsd(p)]  # no daemon left


def _is_virtiofsd(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"virtiofsd" in fh.read().split(b"\0", 1)[0] and _stat_state(pid) != "Z"
    except OSError:
        return False


def _stat_state(pid: str) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_timeout(backend):
    proc = run(backend, "--timeout", "2", example("c", "spin"))
    assert proc.returncode == 124 and b"Error: workload exceeded its time limit of 2 s" in proc.stderr


def test_memory_limit(backend):
    proc = run(backend, "--memory-limit", "64MiB", example("c", "memhog"))
    assert proc.returncode == 2 and b"malloc failed after" in proc.stdout
    assert b"of its 64 MiB memory limit" in proc.stderr


def test_ctrl_c_stops_the_keep(backend):
    name, env = backend
    proc = subprocess.Popen([*ENARX, "run", "--backend", name, str(example("c", "cat"))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    proc.stdin.write(b"echoed before the interrupt\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"echoed before the interrupt\n"  # the workload is running
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130  # stdin stays open: the keep ended because it was stopped
    assert b"Error: keep stopped by SIGINT" in proc.stderr.read()
    proc.stdin.close()


# -- every language in a kvm keep (C is in the suite above) ----------------------------------------------
@pytest.mark.parametrize("lang", ["cpp", "rust", "go", "zig"])
def test_hello_in_a_kvm_keep(lang, vm_env):
    proc = enarx("run", "--backend", "kvm", example(lang, "hello"), env=vm_env, timeout=300)
    assert proc.returncode == 0 and proc.stdout == b"Hello, world!\n", proc.stderr


def test_cpython_package_in_a_kvm_keep(vm_env):
    """CPython (20 MB of wasm, compiled on the host) with its stdlib (one zip) as a read-only `dir` entry."""
    data = os.urandom(5000)
    proc = enarx("run", "--backend", "kvm", example("python", "main").parent, "extra", input=data, env=vm_env,
                 timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["greeting"] == "Hello from Python in a keep!" and doc["argv"] == ["--from-config", "extra"]
    assert doc["stdin_sha256"] == hashlib.sha256(data).hexdigest()


# -- guests that hang or crash -----------------------------------------------------------------------------
def broken_image(vm_image, tmp_path: Path, init: str) -> Path:
    """The real image with /init replaced (a second cpio appended: the kernel unpacks both, the later wins)."""
    from enarx.backends.vm import cpio

    folder = tmp_path / "image"
    folder.mkdir()
    for name in ("vmlinux", "bzImage", "manifest.json"):
        (folder / name).symlink_to(vm_image.directory / name)
    with open(folder / "initrd.img", "wb") as out:
        out.write(vm_image.initrd.read_bytes())
        cpio.write(out, [cpio.file("init", f"#!/usr/bin/python3 -SI\n{init}\n".encode(), 0o755)])
    return folder


def test_a_guest_that_hangs_is_stopped_and_reported(vm_env, vm_image, tmp_path):
    env = {**vm_env, "ENARX_VM_IMAGE": str(broken_image(vm_image, tmp_path, "import time\ntime.sleep(1e6)")),
           "ENARX_VM_BOOT_TIMEOUT": "10"}
    proc = enarx("run", "--backend", "kvm", example("c", "hello"), env=env, timeout=120)
    one_line_error(proc, "keep did not start within 10 s and was stopped")
    assert proc.returncode == 1


def test_a_guest_that_crashes_is_reported_with_its_last_words(vm_env, vm_image, tmp_path):
    env = {**vm_env, "ENARX_VM_IMAGE": str(broken_image(vm_image, tmp_path, "raise SystemExit('guest gave up')"))}
    proc = enarx("run", "--backend", "kvm", example("c", "hello"), env=env, timeout=300)
    line = one_line_error(proc, "keep crashed: its virtual machine stopped without reporting an exit status")
    assert "guest gave up" in line or "Kernel panic" in line
