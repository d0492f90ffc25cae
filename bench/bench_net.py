"""Keep networking vs native, side by side: the Go echo server in a keep vs the same program built for
Linux (connections per second; bulk throughput with 64 KiB messages), and TLS handshakes per second of a
keep's TLS listener vs a Python `ssl` server on the host."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "examples" / "build"
STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


@contextmanager
def keep(module: Path, prot: str):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "Enarx.toml"
        cfg.write_text(STDIO + f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "{prot}"\n'
                       'addr = "127.0.0.1"\nport = 0\n')
        proc = subprocess.Popen([sys.executable, "-m", "enarx", "run", "--wasmcfgfile", str(cfg), str(module)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            line = proc.stderr.readline().decode()
            yield int(re.search(r":(\d+)\s*$", line).group(1))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def native_echo():
    env = dict(os.environ, ECHO_LISTEN="127.0.0.1:0")
    proc = subprocess.Popen([str(BUILD / "native" / "echo_server")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline().decode()
        yield int(re.search(r":(\d+)\s*$", line).group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def python_tls_echo():
    from enarx.runtime.identity import KeepIdentity
    from enarx.runtime.net.tls import server_context

    ctx = server_context(KeepIdentity.generate().self_sign())
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    while data := tls.recv(65536):
                        tls.sendall(data)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def connections_per_second(port: int, count: int = 300) -> float:
    start = time.perf_counter()
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"ping")
            assert s.recv(16) == b"ping"
    return count / (time.perf_counter() - start)


def bulk_mb_per_second(port: int, total: int = 64 << 20, message: int = 64 << 10) -> float:
    chunk = os.urandom(message)
    with socket.create_connection(("127.0.0.1", port)) as s:
        received = 0

        def reader() -> None:
            nonlocal received
            while received < total:
                data = s.recv(1 << 20)
                if not data:
                    return
                received += len(data)

        start = time.perf_counter()
        t = threading.Thread(target=reader)
        t.start()
        for _ in range(total // message):
            s.sendall(chunk)
        t.join()
        elapsed = time.perf_counter() - start
    assert received == total
    return total / elapsed / 1e6


def handshakes_per_second(port: int, count: int = 150) -> float:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    start = time.perf_counter()
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="keep") as s:
            s.sendall(b"hi")
            assert s.recv(16) == b"hi"
    return count / (time.perf_counter() - start)


def main() -> None:
    rows = []
    # best of three rounds, alternating native and keep so that machine noise hits both alike
    native_cps = native_bulk = keep_cps = keep_bulk = 0.0
    for _ in range(3):
        with native_echo() as port:
            native_cps = max(native_cps, connections_per_second(port))
            native_bulk = max(native_bulk, bulk_mb_per_second(port))
        with keep(BUILD / "go" / "echo_server.wasm", "tcp") as port:
            connections_per_second(port, 20)  # warm up
            keep_cps = max(keep_cps, connections_per_second(port))
            keep_bulk = max(keep_bulk, bulk_mb_per_second(port))
    rows.append(("Go echo: connections/s", f"{native_cps:.0f}", f"{keep_cps:.0f}", f"{keep_cps / native_cps:.2f}",
                 "≥ 0.3"))
    rows.append(("Go echo: bulk TCP, 64 KiB messages", f"{native_bulk:.0f} MB/s", f"{keep_bulk:.0f} MB/s",
                 f"{keep_bulk / native_bulk:.2f}", "≥ 0.5"))
    host_hs = keep_hs = 0.0
    for _ in range(2):
        with python_tls_echo() as port:
            host_hs = max(host_hs, handshakes_per_second(port))
        with keep(BUILD / "c" / "echo_server.wasm", "tls") as port:
            handshakes_per_second(port, 10)
            keep_hs = max(keep_hs, handshakes_per_second(port))
    rows.append(("TLS 1.3 handshakes/s (C echo in keep vs Python ssl server)", f"{host_hs:.0f}", f"{keep_hs:.0f}",
                 f"{keep_hs / host_hs:.2f}", "—"))
    print("| network benchmark | native / host | in the keep | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()


def collect(rounds: int) -> list[dict]:
    """The rows of `make bench` (see bench/framework.py): each round measures native and keep side by side."""
    from framework import quick, row

    connections, total = (100, 16 << 20) if quick() else (300, 64 << 20)
    cps, bulk, tls = [], [], []
    for _ in range(rounds):
        with native_echo() as port:
            native = connections_per_second(port, connections), bulk_mb_per_second(port, total)
        with keep(BUILD / "go" / "echo_server.wasm", "tcp") as port:
            connections_per_second(port, 20)  # warm up
            inside = connections_per_second(port, connections), bulk_mb_per_second(port, total)
        cps.append((native[0], inside[0]))
        bulk.append((native[1], inside[1]))
        with python_tls_echo() as port:
            host = handshakes_per_second(port, connections // 2)
        with keep(BUILD / "c" / "echo_server.wasm", "tls") as port:
            handshakes_per_second(port, 10)
            tls.append((host, handshakes_per_second(port, connections // 2)))
    return [
        row("network", "Go echo server (`examples/go/echo_server`): connections/s", unit="conn/s",
            baseline_label="native build", samples=cps, target=0.3),
        row("network", "Go echo server: bulk TCP, 64 KiB messages", unit="MB/s", baseline_label="native build",
            samples=bulk, target=0.5),
        row("network", "TLS 1.3 handshakes/s: C echo in a keep", unit="hs/s", baseline_label="Python `ssl` server",
            samples=tls, target=None),
    ]
