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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

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
        line = stream.readline().decode()
        match = _PORT.search(line)
        if not match:
            raise RuntimeError(f"{cmd[0]}: no 'listening on' line: {line!r}")
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
                  warm_up: Callable[[int], object]) -> tuple[list[float], list[float]]:
    """The same warm-up for both servers, then per round the baseline and the keep back to back."""
    warm_up(baseline_port)
    warm_up(keep_port)
    base, subject = [], []
    for _ in range(rounds):
        base.append(measure(baseline_port))
        subject.append(measure(keep_port))
    return base, subject


def _row(name: str, unit: str, baseline_label: str, base: list[float], subject: list[float], target: float,
         note: str) -> dict:
    ratios = [s / b for b, s in zip(base, subject, strict=True)]
    return {"group": "network", "name": name, "unit": unit, "baseline_label": baseline_label,
            "baseline": round(statistics.median(base), 1), "value": round(statistics.median(subject), 1),
            "ratio": round(statistics.median(ratios), 3), "target": target, "compare": ">=",
            "rounds": [round(r, 3) for r in ratios], "note": note}


def http_rows(rounds: int) -> list[dict]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk; `make bench` does it)")
    with native("http_server", "HTTP_LISTEN") as nport, keep(BUILD / "go" / "http_server.wasm") as kport:
        base, subject = _side_by_side(rounds, nport, kport, wrk_requests_per_second,
                                      lambda p: wrk_requests_per_second(p, 1))
    return [_row("Go net/http, new connection per request", "req/s", "native GOMAXPROCS=1", base, subject, 0.3,
                 f"wrk -t1 -c{WRK_CONNECTIONS} -H 'Connection: close', {WRK_SECONDS} s per side per round")]


def echo_rows(rounds: int) -> list[dict]:
    with native("echo_server", "ECHO_LISTEN") as nport, keep(BUILD / "go" / "echo_server.wasm") as kport:
        cps = _side_by_side(rounds, nport, kport, connections_per_second, lambda p: connections_per_second(p, 30))
        bulk = _side_by_side(rounds, nport, kport, bulk_mb_per_second, lambda p: bulk_mb_per_second(p, 8 << 20))
    return [
        _row("Go echo: connections/s", "conn/s", "native GOMAXPROCS=1", *cps, 0.3,
             "300 sequential connect, 4-byte echo, close (Python client)"),
        _row("Go echo: bulk TCP, 64 KiB messages", "MB/s", "native GOMAXPROCS=1", *bulk, 0.5,
             "64 MiB each way on one connection"),
    ]


def tls_rows(rounds: int) -> list[dict]:
    with host_tls_echo() as hport, keep(BUILD / "c" / "echo_server.wasm", "tls") as kport:
        base, subject = _side_by_side(rounds, hport, kport, handshakes_per_second,
                                      lambda p: handshakes_per_second(p, 20))
    return [_row("TLS 1.3 handshakes/s (C echo in a keep)", "handshakes/s",
                 "host Python ssl server, own process", base, subject, 0.5,
                 "sequential handshake + 2-byte echo; the same TLS settings and key type on both sides")]


def collect(rounds: int) -> list[dict]:
    return [*http_rows(rounds), *echo_rows(rounds), *tls_rows(rounds)]


def main(rounds: int = 3) -> None:
    print("| network benchmark | baseline | in the keep | ratio (median of rounds) | target |")
    print("|---|---|---|---|---|")
    for row in collect(rounds):
        print(f"| {row['name']} | {row['baseline']:g} {row['unit']} ({row['baseline_label']}) | "
              f"{row['value']:g} {row['unit']} | {row['ratio']:.2f} {row['rounds']} | "
              f"{row['compare']} {row['target']} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
