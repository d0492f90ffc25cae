"""Keep networking vs native, side by side in one run (``collect(rounds)`` yields the bench rows).

* Go ``net/http`` (``examples/go/http_server``), a new connection per request under ``wrk`` — the
  benchmark a user runs first: the keep vs the same program built for Linux at ``GOMAXPROCS=1``.
* Go echo server: connections per second, and bulk throughput with 64 KiB messages.
* TLS 1.3 handshakes per second: the C echo example in a TLS keep vs a host TLS server with the keep's
  TLS settings, in its own process (``bench/tls_echo_server.py``).

Every server is started once and warmed up the same way on both sides; each round then measures the
baseline and the keep back to back, and a row's ``ratio`` is the median of the per-round ratios.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from framework import quick, row

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "examples" / "build"
STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
WRK_SECONDS = 3
WRK_CONNECTIONS = 4
_PORT = re.compile(r"listening on \S*:(\d+)\s*$")


@contextmanager
def _server(cmd: list[str], *, env: dict[str, str] | None = None, port_on_stderr: bool = False) -> Iterator[int]:
    """Start a server process, yield the port it prints (``listening on HOST:PORT``), stop it."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL if port_on_stderr else subprocess.PIPE,
                            stderr=subprocess.PIPE if port_on_stderr else subprocess.DEVNULL)
    stream = proc.stderr if port_on_stderr else proc.stdout
    assert stream is not None
    try:
        seen = []
        while not (match := _PORT.search(line := stream.readline().decode())):
            seen.append(line)
            if not line:
                raise RuntimeError(f"{cmd[0]}: no 'listening on' line: {''.join(seen)[-500:]!r}")
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def keep(module: Path, prot: str = "tcp") -> Iterator[int]:
    with tempfile.TemporaryDirectory(prefix="enarx-bench-") as tmp:
        cfg = Path(tmp) / "Enarx.toml"
        cfg.write_text(STDIO + f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "{prot}"\n'
                       'addr = "127.0.0.1"\nport = 0\n')
        with _server([sys.executable, "-m", "enarx", "run", "--wasmcfgfile", str(cfg), str(module)],
                     port_on_stderr=True) as port:
            yield port


def native(program: str, env_var: str) -> AbstractContextManager[int]:
    env = dict(os.environ, GOMAXPROCS="1", **{env_var: "127.0.0.1:0"})
    return _server([str(BUILD / "native" / program)], env=env)


def host_tls_echo() -> AbstractContextManager[int]:
    return _server([sys.executable, str(ROOT / "bench" / "tls_echo_server.py")])


# -- load generators ----------------------------------------------------------------------------------
def wrk_requests_per_second(port: int, seconds: int = WRK_SECONDS) -> float:
    """``wrk`` with ``Connection: close``: every request on a new TCP connection."""
    out = subprocess.run(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "-H", "Connection: close",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    if re.search(r"Non-2xx|Socket errors: connect [1-9]", out.stdout):
        raise RuntimeError(f"wrk saw failed requests: {out.stdout[-500:]}")
    return float(match.group(1))


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


# -- rows -----------------------------------------------------------------------------------------------
def _side_by_side(rounds: int, baseline_port: int, keep_port: int, measure: Callable[[int], float],
                  warm_up: Callable[[int], object]) -> list[tuple[float, float]]:
    """The same warm-up for both servers, then per round the baseline and the keep back to back."""
    warm_up(baseline_port)
    warm_up(keep_port)
    return [(measure(baseline_port), measure(keep_port)) for _ in range(rounds)]


def http_rows(rounds: int) -> list[dict]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk; `make bench` does it)")
    seconds = 2 if quick() else WRK_SECONDS
    with native("http_server", "HTTP_LISTEN") as nport, keep(BUILD / "go" / "http_server.wasm") as kport:
        samples = _side_by_side(rounds, nport, kport, lambda p: wrk_requests_per_second(p, seconds),
                                lambda p: wrk_requests_per_second(p, 1))
    return [row("network", "Go net/http (`examples/go/http_server`), new connection per request", unit="req/s",
                baseline_label="native build, GOMAXPROCS=1", samples=samples, target=0.3,
                note=f"wrk -t1 -c{WRK_CONNECTIONS} -H 'Connection: close', {seconds} s per side per round")]


def echo_rows(rounds: int) -> list[dict]:
    connections, total = (100, 16 << 20) if quick() else (300, 64 << 20)
    with native("echo_server", "ECHO_LISTEN") as nport, keep(BUILD / "go" / "echo_server.wasm") as kport:
        cps = _side_by_side(rounds, nport, kport, lambda p: connections_per_second(p, connections),
                            lambda p: connections_per_second(p, 30))
        bulk = _side_by_side(rounds, nport, kport, lambda p: bulk_mb_per_second(p, total),
                             lambda p: bulk_mb_per_second(p, 8 << 20))
    return [
        row("network", "Go echo server (`examples/go/echo_server`): connections/s", unit="conn/s",
            baseline_label="native build, GOMAXPROCS=1", samples=cps, target=0.3,
            note=f"{connections} sequential connect, 4-byte echo, close (one Python client)"),
        row("network", "Go echo server: bulk TCP, 64 KiB messages", unit="MB/s",
            baseline_label="native build, GOMAXPROCS=1", samples=bulk, target=0.5,
            note=f"{total >> 20} MiB each way on one connection"),
    ]


def tls_rows(rounds: int) -> list[dict]:
    count = 50 if quick() else 150
    with host_tls_echo() as hport, keep(BUILD / "c" / "echo_server.wasm", "tls") as kport:
        samples = _side_by_side(rounds, hport, kport, lambda p: handshakes_per_second(p, count),
                                lambda p: handshakes_per_second(p, 20))
    return [row("network", "TLS 1.3 handshakes/s: C echo in a keep", unit="hs/s",
                baseline_label="Python `ssl` server, own process", samples=samples, target=0.5,
                note=f"{count} sequential handshakes + 2-byte echo; the keep's TLS settings on both sides")]


def collect(rounds: int) -> list[dict]:
    """The rows of `make bench` (see bench/framework.py)."""
    return [*http_rows(rounds), *echo_rows(rounds), *tls_rows(rounds)]
