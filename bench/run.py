"""`make bench`: run every benchmark module's ``collect(rounds)``, judge each median against its target,
write the measured record with date and machine, and fail when a median misses its target beyond the
tolerance (see :mod:`framework`).

    python bench/run.py                  # every bench_*.py, 5 rounds, writes bench/results.json
    python bench/run.py --quick          # 3 rounds of smaller work, writes bench/results/quick.json
    python bench/run.py --only network   # some modules (bench_network.py or bench_net.py), not the record

Only a complete, successful run replaces the committed record ``bench/results.json``; `bench/render.py`
then renders the README tables from it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import framework

RECORD = HERE / "results.json"
SCRATCH = HERE / "results"
ROUNDS, QUICK_ROUNDS = 5, 3


def modules() -> list[str]:
    """Every benchmark module: ``bench/bench_*.py``, in name order."""
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def select(names: list[str], only: list[str]) -> list[str]:
    chosen = [m for m in names if not only or m in only or m.removeprefix("bench_") in only]
    unknown = [o for o in only if not any(o in (m, m.removeprefix("bench_")) for m in names)]
    if unknown:
        raise SystemExit(f"Error: no benchmark module {', '.join(unknown)} (have {', '.join(names)})")
    return chosen


def collect(module: str, rounds: int) -> list[dict[str, Any]]:
    rows = importlib.import_module(module).collect(rounds)
    for r in rows:
        r["module"] = module
        bad = framework.problems(r)
        if bad:
            raise ValueError(f"{module}: row {r.get('name')!r}: {'; '.join(bad)}")
        r["verdict"] = framework.judge(r)
    return rows


def report(r: dict[str, Any]) -> str:
    target = "—" if r["target"] is None else f"{r['compare']} {r['target']}"
    return (f"  {r['group']:<12} {r['name'][:70]:<70} {r['baseline']:>10g} {r['value']:>10g} {r['unit']:<6} "
            f"ratio {r['ratio']:<6g} target {target:<8} {r['verdict']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rounds, smaller work per round")
    parser.add_argument("--rounds", type=int, help=f"rounds per benchmark (default {ROUNDS}, quick {QUICK_ROUNDS})")
    parser.add_argument("--only", nargs="+", default=[], metavar="MODULE", help="run only these modules")
    parser.add_argument("--output", type=Path, help="where to write the results (default: the record for a "
                        "complete run, bench/results/ otherwise)")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["ENARX_BENCH_QUICK"] = "1"
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    chosen = select(modules(), args.only)
    complete = not args.quick and not args.only and args.rounds is None
    output = args.output or (RECORD if complete else SCRATCH / ("quick.json" if args.quick else "partial.json"))

    results: dict[str, Any] = {"date": framework.now(), "machine": framework.machine(), "rounds": rounds,
                               "tolerance": framework.TOLERANCE, "quick": args.quick, "rows": [], "errors": []}
    for module in chosen:
        start = time.perf_counter()
        print(f"{module}: {rounds} rounds …", file=sys.stderr, flush=True)
        try:
            rows = collect(module, rounds)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            results["errors"].append(f"{module}: {type(exc).__name__}: {exc}")
            continue
        results["rows"].extend(rows)
        print(f"{module}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        for r in rows:
            print(report(r), file=sys.stderr)

    missed = [r for r in results["rows"] if r["verdict"] == "missed"]
    if results["errors"] and output == RECORD:
        output = SCRATCH / "failed.json"  # the record holds complete runs only
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {output}", file=sys.stderr)
    for r in missed:
        print(f"Error: {r['group']}: {r['name']}: median ratio {r['ratio']} misses its target {r['compare']} "
              f"{r['target']} by more than {framework.TOLERANCE:.0%}", file=sys.stderr)
    for e in results["errors"]:
        print(f"Error: {e}", file=sys.stderr)
    return 1 if missed or results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
