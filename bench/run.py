"""`make bench`: keep vs bare wasmtime-py, measured side by side in one run; prints a markdown table.

Each figure is the best (or median) of several runs of both commands, interleaved, so that machine noise
hits both sides alike. Ratios are what matter; absolute numbers depend on the machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "examples" / "build" / "c"
PY = sys.executable
ENARX = [PY, "-m", "enarx", "run"]
BARE = [PY, str(ROOT / "bench" / "bare_wasmtime.py")]


def timed(cmd: list[str], *, sink: bool = False) -> float:
    """Wall time of one run; with ``sink`` the harness reads stdout through a pipe (like a consumer)."""
    start = time.perf_counter()
    if sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        total = 0
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
        proc.wait()
    else:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def compare(name: str, args: list[str], rounds: int, *, sink: bool = False, stat=min) -> tuple[float, float]:
    keep, bare = [], []
    for _ in range(rounds):
        bare.append(timed([*BARE, *args], sink=sink))
        keep.append(timed([*ENARX, *args], sink=sink))
    return stat(keep), stat(bare)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ENARX_CACHE_DIR"] = os.path.join(tmp, "enarx")
        os.environ["BARE_CACHE"] = tmp
        for module in ("hello", "sha256", "spew"):  # warm both caches
            timed([*BARE, str(BUILD / f"{module}.wasm"), "1"])
            timed([*ENARX, str(BUILD / f"{module}.wasm"), "1"])

        rows = []
        keep, bare = compare("cpu", [str(BUILD / "sha256.wasm"), "256"], 3)
        rows.append(("CPU-bound: sha256 of 256 MiB", f"{bare:.2f} s", f"{keep:.2f} s",
                     f"{bare / keep:.2f} (throughput)", "≥ 0.95"))
        keep, bare = compare("hello", [str(BUILD / "hello.wasm")], 30, stat=statistics.median)
        rows.append(("`enarx run hello.wasm`, warm cache", f"{bare * 1000:.0f} ms", f"{keep * 1000:.0f} ms",
                     f"{keep / bare:.2f}× (wall time)", "≤ 1.5×"))
        keep, bare = compare("stdout", [str(BUILD / "spew.wasm"), "100"], 5, sink=True)
        rows.append(("100 MB of stdout through a pipe", f"{100 / bare:.0f} MB/s", f"{100 / keep:.0f} MB/s",
                     f"{bare / keep:.2f} (throughput)", "≥ 0.8"))

    print("| benchmark | bare wasmtime-py | enarx run (nil keep) | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")

    sys.path.insert(0, str(ROOT / "bench"))
    import bench_net
    import bench_steward

    print()
    bench_net.main()
    print()
    from enarx.attestation import bench as attest_bench

    attest_bench.main()
    print()
    bench_steward.main()


if __name__ == "__main__":
    main()
