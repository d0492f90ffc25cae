"""Keep runtime vs bare wasmtime-py (`bench/bare_wasmtime.py`, the same module with its own serialized-module
cache and inherited stdio): CPU-bound throughput, warm start-up, and stdout through a pipe."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from framework import quick, row

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "examples" / "build" / "c"
PY = sys.executable
ENARX = [PY, "-m", "enarx", "run"]
BARE = [PY, str(ROOT / "bench" / "bare_wasmtime.py")]
GROUP = "runtime"
BASELINE = "bare wasmtime-py"


def timed(cmd: list[str], *, sink: bool = False) -> float:
    """Wall time of one run; with ``sink`` the harness reads stdout through a pipe (like a consumer)."""
    start = time.perf_counter()
    if sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        while proc.stdout.read(1 << 20):
            pass
        proc.wait()
    else:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def pair(args: list[str], *, runs: int = 1, sink: bool = False) -> tuple[float, float]:
    """(bare, keep) wall time: the median of ``runs`` interleaved runs of each."""
    bare, keep = [], []
    for _ in range(runs):
        bare.append(timed([*BARE, *args], sink=sink))
        keep.append(timed([*ENARX, *args], sink=sink))
    return statistics.median(bare), statistics.median(keep)


@contextmanager
def fresh_caches() -> Iterator[None]:
    """Both module caches in a temporary directory for this benchmark only."""
    saved = {k: os.environ.get(k) for k in ("ENARX_CACHE_DIR", "BARE_CACHE")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(ENARX_CACHE_DIR=os.path.join(tmp, "enarx"), BARE_CACHE=tmp)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def collect(rounds: int) -> list[dict]:
    mib = 64 if quick() else 256
    spew = 20 if quick() else 100
    with fresh_caches():
        for module in ("hello", "sha256", "spew"):  # warm both module caches
            pair([str(BUILD / f"{module}.wasm"), "1"])
        cpu, hello, stdout = [], [], []
        for _ in range(rounds):  # the three benchmarks interleaved, so a noisy minute hits all alike
            bare, keep = pair([str(BUILD / "sha256.wasm"), str(mib)])
            cpu.append((mib / bare, mib / keep))
            bare, keep = pair([str(BUILD / "hello.wasm")], runs=5 if quick() else 10)
            hello.append((bare * 1000, keep * 1000))
            bare, keep = pair([str(BUILD / "spew.wasm"), str(spew)], runs=3, sink=True)
            stdout.append((spew / bare, spew / keep))
    return [
        row(GROUP, f"CPU-bound: sha256 of {mib} MiB (`examples/c/sha256.c`), throughput", unit="MiB/s",
            baseline_label=BASELINE, samples=cpu, target=0.95),
        row(GROUP, "`enarx run hello.wasm`, warm module cache, wall time (median of a round's runs)", unit="ms",
            baseline_label=BASELINE, samples=hello, target=1.5, compare="<="),
        row(GROUP, f"{spew} MB of stdout through a pipe (`spew.wasm {spew}`, median of 3 runs a round)",
            unit="MB/s", baseline_label=BASELINE, samples=stdout, target=0.8),
    ]
