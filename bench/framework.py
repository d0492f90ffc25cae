"""The bench row convention: rows built from paired rounds, checked for consistency, judged against targets.

A benchmark module in ``bench/`` (``bench_*.py``) exposes ``collect(rounds: int) -> list[dict]``. Each row
compares a subject (Enarx) with a baseline measured in the same run: every round measures both side by side
and yields one ratio ``value / baseline``; the row's ``ratio`` is the median of those rounds, so one slow
round moves it little. Build rows with :func:`row` from the per-round ``(baseline, value)`` pairs; it also
records the pairs as ``samples`` so that anyone can check the ratio was derived, not typed in.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

#: A median may miss its target by this fraction of the target before `make bench` fails: the machines
#: are shared and noisy, and a ratio moves by several percent between runs of the same code.
TOLERANCE = 0.10

REQUIRED = ("group", "name", "unit", "baseline_label", "baseline", "value", "ratio", "target", "compare",
            "rounds")
PACKAGES = ("wasmtime", "cryptography", "uvicorn", "starlette")


def quick() -> bool:
    """Whether this is a smoke run (`make bench QUICK=1`): modules may shrink the work of one round."""
    return os.environ.get("ENARX_BENCH_QUICK") == "1"


def _round(x: float) -> float:
    """Four significant digits: enough for ratios and rates, short in the committed record."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, 3 - math.floor(math.log10(abs(x))))


def paired(measure: Callable[[], tuple[float, float]], rounds: int) -> list[tuple[float, float]]:
    """Run ``measure`` (one round: baseline then subject, side by side) ``rounds`` times."""
    return [measure() for _ in range(rounds)]


def row(group: str, name: str, *, unit: str, baseline_label: str, samples: Iterable[tuple[float, float]],
        target: float | None, compare: str = ">=", note: str = "") -> dict[str, Any]:
    """A row from per-round ``(baseline, value)`` pairs; ``ratio`` is the median of ``value / baseline``."""
    pairs = [(_round(b), _round(v)) for b, v in samples]
    if not pairs:
        raise ValueError(f"{group}/{name}: no rounds measured")
    ratios = [_round(v / b) for b, v in pairs]
    return {"group": group, "name": name, "unit": unit, "baseline_label": baseline_label,
            "baseline": statistics.median(b for b, _ in pairs), "value": statistics.median(v for _, v in pairs),
            "ratio": statistics.median(ratios), "target": target, "compare": compare, "rounds": ratios,
            "samples": [list(p) for p in pairs], "note": note}


def problems(r: dict[str, Any]) -> list[str]:
    """What is inconsistent in a row (empty when it follows the convention)."""
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        return [f"missing {', '.join(missing)}"]
    out = []
    if r["compare"] not in (">=", "<="):
        out.append(f"compare is {r['compare']!r}, not '>=' or '<='")
    if not r["rounds"]:
        out.append("no rounds")
    elif not math.isclose(r["ratio"], statistics.median(r["rounds"]), rel_tol=1e-9):
        out.append(f"ratio {r['ratio']} is not the median of its rounds {r['rounds']}")
    if not (r["baseline"] > 0 and r["value"] > 0):
        out.append("baseline and value must both be measured (> 0)")
    samples = r.get("samples")
    if samples is not None:
        if len(samples) != len(r["rounds"]):
            out.append("one sample pair per round is required")
        elif any(not math.isclose(q, v / b, rel_tol=2e-3) for (b, v), q in zip(samples, r["rounds"], strict=True)):
            out.append("a round's ratio is not value / baseline of its sample")
        elif (r["baseline"], r["value"]) != (statistics.median(b for b, _ in samples),
                                               statistics.median(v for _, v in samples)):
            out.append("baseline and value are not the medians of the samples")
    return out


def judge(r: dict[str, Any], tolerance: float = TOLERANCE) -> str:
    """``met``, ``within tolerance`` (missed by at most ``tolerance`` of the target), ``missed`` or ``no target``."""
    target = r.get("target")
    if target is None:
        return "no target"
    ratio = r["ratio"]
    if r["compare"] == ">=":
        return "met" if ratio >= target else "within tolerance" if ratio >= target * (1 - tolerance) else "missed"
    return "met" if ratio <= target else "within tolerance" if ratio <= target * (1 + tolerance) else "missed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where the numbers were measured: they are only comparable with numbers from the same machine."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "packages": versions}


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
