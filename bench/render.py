"""Render the README's benchmark tables from the measured record ``bench/results.json``.

Each group's table sits between ``<!-- bench:GROUP -->`` and ``<!-- /bench:GROUP -->`` in README.md, and
the machine line between ``<!-- bench:machine -->`` and ``<!-- /bench:machine -->``; the text around them
is left alone, so rendering twice changes nothing.

    python bench/render.py           # rewrite README.md
    python bench/render.py --check   # exit 1 when README.md differs from what the record renders
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECORD = HERE / "results.json"
README = HERE.parent / "README.md"
VERDICT = {"met": "yes", "within tolerance": "within tolerance", "missed": "**NO**", "no target": "—"}


def number(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| benchmark | baseline | baseline | Enarx | ratio | target | met |", "|---|---|--:|--:|--:|:-:|:-:|"]
    notes = []
    for r in rows:
        target = "—" if r["target"] is None else f"{'≥' if r['compare'] == '>=' else '≤'} {r['target']}"
        lines.append(f"| {r['name']} | {r['baseline_label']} | {number(r['baseline'])} {r['unit']} | "
                     f"{number(r['value'])} {r['unit']} | {r['ratio']:.2f} | {target} | {VERDICT[r['verdict']]} |")
        if r.get("note"):
            notes.append(f"* {r['name']}: {r['note']}")
    if len(notes) > 1 and len({r.get("note") for r in rows}) == 1:  # one note shared by every row: say it once
        notes = [f"* {rows[0]['note']}"]
    return "\n".join(lines + ([""] + notes if notes else []))


def machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return (f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores), Linux {m['kernel']}, Python "
            f"{m['python']}, {packages}. Each ratio is the median of {results['rounds']} rounds, each round "
            f"measuring Enarx and its baseline side by side; `make bench` fails when a median misses its "
            f"target by more than {results['tolerance']:.0%} of it.")


def blocks(results: dict[str, Any]) -> dict[str, str]:
    """Marker name → rendered block content."""
    out = {"machine": machine_line(results)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results["rows"]:
        groups.setdefault(r["group"], []).append(r)
    out.update({group: table(rows) for group, rows in groups.items()})
    return out


def render(text: str, results: dict[str, Any]) -> str:
    """``text`` with every block replaced; a group without its markers in ``text`` is an error."""
    for name, content in blocks(results).items():
        pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"Error: README.md has no <!-- bench:{name} --> … <!-- /bench:{name} --> block")
        text = pattern.sub(lambda m, c=content: m.group(1) + c + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args(argv)
    results = json.loads(RECORD.read_text())
    text = README.read_text()
    rendered = render(text, results)
    if args.check:
        if rendered != text:
            print("Error: README.md benchmark tables differ from bench/results.json: run python bench/render.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(rendered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
