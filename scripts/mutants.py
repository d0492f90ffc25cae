"""`make mutants`: mutation testing (cosmic-ray) of the code that decides trust, scoped per group of modules.

    python scripts/mutants.py                      # every group of scripts/mutants.toml that is not pending
    python scripts/mutants.py attestation-core     # named groups (pending ones too)
    python scripts/mutants.py --check              # only the deliberate-mutant check below

Operators: cosmic-ray's core set plus ``enarx/…`` (scripts/mutation_operators.py), which disables one check at
a time: a ``raise`` removed, a call statement removed, an attribute assignment (``ctx.verify_mode = …``) removed.

Each mutant is applied in place to a *copy* of the tree (build/mutants/tree; the working tree is never
touched), and the group's tests run there with the copy's ``src`` first on PYTHONPATH. So the CLI run in
subprocesses, the Steward server and forked keeps import the mutant too — checked before every run by a
deliberate mutant that only a subprocess can see (the keep's TLS 1.3 floor lowered to 1.2 must be caught by
the ``openssl s_client`` test, whose keep is an ``enarx run`` subprocess).

Sampling rule: a group whose mutants would not fit in its ``budget`` seconds (mutants x the unmutated test
time) runs a deterministic sample: pending mutants ordered by SHA-256 of ``path:operator:occurrence``, the
first ``budget // test time`` of them. Operators that only rewrite arithmetic between numbers of no trust
meaning are left out (EXCLUDED below). Results: build/mutants/report.md and report.json; survivors are
explained in docs/mutants.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutants"
SCOPE = ROOT / "scripts" / "mutants.toml"
BIN = Path(sys.executable).parent
#: Arithmetic and bit-operator swaps (``+``→``-``, ``<<``→``>>``…) and number tweaks: in this code they move
#: sizes and offsets, which the parsers' own bounds checks and the fuzzers cover; they would triple the count.
EXCLUDED = [r"core/ReplaceBinaryOperator_.*", r"core/NumberReplacer", r"core/ReplaceUnaryOperator_.*Invert.*"]
#: The deliberate mutant: a change only a subprocess (the keep) can observe.
PROBE = ("src/enarx/runtime/net/tls.py", "ctx.minimum_version = ssl.TLSVersion.TLSv1_3",
         "ctx.minimum_version = ssl.TLSVersion.TLSv1_2",
         ["tests/test_network.py::test_openssl_s_client_tls13_accepted_tls12_refused"])


def copy_tree(dest: Path) -> Path:
    """The repository's files (tracked and new, not ignored) plus the built examples, copied to ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    shutil.copytree(ROOT / "examples" / "build", dest / "examples" / "build", symlinks=True)
    return dest


def test_env(tree: Path) -> dict[str, str]:
    """Tests in the copy import the copy (also in subprocesses), and may not skip what they need."""
    corpora = Path(os.environ.get("ENARX_CORPORA", ROOT.parent / "shared" / "corpora")).resolve()
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), ENARX_CORPORA=str(corpora), ENARX_REQUIRE_EXAMPLES="1",
               ENARX_REQUIRE_CORPORA="1", PYTHONDONTWRITEBYTECODE="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def pytest_command(tests: list[str]) -> list[str]:
    return [str(BIN / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0", *tests]


def check_probe(tree: Path, env: dict[str, str]) -> None:
    """Fail unless the deliberate mutant is killed (and its test passes without it)."""
    path, old, new, tests = PROBE
    source = tree / path
    text = source.read_text()
    if old not in text:
        raise SystemExit(f"Error: the deliberate mutant no longer applies to {path}: update PROBE in {__file__}")
    clean = subprocess.run(pytest_command(tests), cwd=tree, env=env, capture_output=True, text=True)
    if clean.returncode != 0:
        raise SystemExit(f"Error: {tests[0]} fails without any mutant:\n{clean.stdout[-2000:]}")
    source.write_text(text.replace(old, new))
    try:
        mutated = subprocess.run(pytest_command(tests), cwd=tree, env=env, capture_output=True, text=True)
    finally:
        source.write_text(text)
    if mutated.returncode == 0:
        raise SystemExit("Error: a mutant seen only by subprocesses survived: the tests do not import the copy")
    print(f"deliberate mutant ({path}: TLS 1.2 allowed) killed by a test whose keep is a subprocess: ok")


def sample_key(item: Any) -> str:
    m = item.mutations[0]
    return hashlib.sha256(f"{m.module_path}:{m.operator_name}:{m.occurrence}".encode()).hexdigest()


def sample(db_path: Path, keep: int) -> tuple[int, int]:
    """Mark all but the first ``keep`` pending mutants (by :func:`sample_key`) as skipped; (total, kept)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(db_path), WorkDB.Mode.open) as db:
        pending = sorted(db.pending_work_items, key=sample_key)
        for item in pending[keep:]:
            db.set_result(item.job_id, WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED))
    return len(pending), min(keep, len(pending))


def results(db_path: Path) -> list[dict[str, Any]]:
    """Every mutant of a session: where, which operator, and what became of it."""
    from cosmic_ray.work_db import WorkDB, use_db

    out = []
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            m = item.mutations[0]
            outcome = result.test_outcome.value if result.test_outcome else result.output
            out.append({"module": str(m.module_path), "line": m.start_pos[0], "operator": m.operator_name,
                        "occurrence": m.occurrence, "outcome": outcome, "diff": result.diff or ""})
    return out


def summarize(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The group's score from its session (killed ÷ mutants run; a timeout counts as killed)."""
    base = WORK / name
    meta = json.loads((base / "meta.json").read_text())
    rows = results(base / "session.sqlite")
    ran = [r for r in rows if r["outcome"] in ("killed", "survived", "incompetent")]
    killed = sum(r["outcome"] != "survived" for r in ran)
    survived = [r for r in rows if r["outcome"] == "survived"]
    return {"group": name, "modules": spec["modules"], "tests": spec["tests"], **meta,
            "mutants": sum(r["outcome"] != "Filtered operator" for r in rows), "run": len(ran), "killed": killed,
            "survived": len(survived), "score": round(killed / max(1, len(ran)), 3), "survivors": survived}


def run_group(name: str, spec: dict[str, Any], tree: Path, env: dict[str, str]) -> dict[str, Any]:
    base = WORK / name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    config, db = base / "config.toml", base / "session.sqlite"
    started = time.perf_counter()
    clean = subprocess.run(pytest_command(spec["tests"]), cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if clean.returncode != 0:
        raise SystemExit(f"Error: {name}: the tests fail without any mutant:\n{clean.stdout[-3000:]}")
    command = shlex.join(pytest_command(spec["tests"]))  # cosmic-ray splits it with shlex
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(spec['modules'])}\n"
        f"timeout = {seconds * 3 + 60:.0f}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\nname = \"local\"\n"
        f"[cosmic-ray.filters.operators-filter]\nexclude-operators = {json.dumps(EXCLUDED)}\n")
    cr = [str(BIN / "python"), str(ROOT / "scripts" / "mutation_operators.py")]  # cosmic-ray + enarx/ operators
    subprocess.run([*cr, "init", str(config), str(db)], cwd=tree, env=env, check=True)
    subprocess.run([str(BIN / "cr-filter-operators"), str(db), str(config)], cwd=tree, env=env, check=True)
    subprocess.run([str(BIN / "cr-filter-pragma"), str(db)], cwd=tree, env=env, check=True)
    total, kept = sample(db, max(1, int(spec["budget"] // seconds)))
    print(f"{name}: {total} mutants after the operator filter, {kept} to run "
          f"(tests take {seconds:.0f} s unmutated, budget {spec['budget']} s)", flush=True)
    subprocess.run([*cr, "exec", str(config), str(db)], cwd=tree, env=env, check=True)
    (base / "meta.json").write_text(json.dumps({"test_seconds": round(seconds, 1), "budget": spec["budget"],
                                                "elapsed": round(time.perf_counter() - started)}))
    return summarize(name, spec)


def report(groups: list[dict[str, Any]]) -> str:
    lines = ["| group | mutants | run | killed | survived | score |", "|---|--:|--:|--:|--:|--:|"]
    for g in groups:
        lines.append(f"| {g['group']} | {g['mutants']} | {g['run']} | {g['killed']} | {g['survived']} | "
                     f"{g['score']:.0%} |")
    for g in groups:
        for s in g["survivors"]:
            lines += ["", f"### {g['group']}: {s['module']}:{s['line']} {s['operator']} #{s['occurrence']}", "",
                      "```diff", s["diff"].strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help="groups of scripts/mutants.toml (default: all not pending)")
    parser.add_argument("--check", action="store_true", help="only check that subprocesses import the mutant")
    parser.add_argument("--report", action="store_true", help="only rebuild the report from the last sessions")
    args = parser.parse_args(argv)
    scope = tomllib.loads(SCOPE.read_text())["groups"]
    unknown = set(args.groups) - set(scope)
    if unknown:
        raise SystemExit(f"Error: unknown group {', '.join(sorted(unknown))} (have {', '.join(scope)})")
    chosen = args.groups or [g for g, spec in scope.items() if not spec.get("pending")]
    for g, spec in scope.items():
        if g not in chosen and spec.get("pending"):
            print(f"{g}: skipped ({spec['pending']}): make mutants GROUPS={g}")
    if args.report:
        done = [summarize(g, scope[g]) for g in chosen]
    else:
        WORK.mkdir(parents=True, exist_ok=True)
        tree = copy_tree(WORK / "tree")
        env = test_env(tree)
        check_probe(tree, env)
        if args.check:
            return 0
        done = [run_group(g, scope[g], tree, env) for g in chosen]
    (WORK / "report.json").write_text(json.dumps(done, indent=1) + "\n")
    (WORK / "report.md").write_text(report(done))
    print(report(done).split("\n###")[0])
    print(f"survivors with diffs: {WORK / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
