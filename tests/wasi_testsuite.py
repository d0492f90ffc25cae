"""Runner for the official WASI test suite (preview 1), through `enarx run`, exactly as each JSON spec says.

Spec (legacy form): ``args`` after the module; ``env`` is the complete environment; each ``dirs`` entry is
preopened from ``<suite>/<d>`` under the guest name ``<d>``; ``stdout``/``stderr`` are prefix matches;
``exit_code`` must match; ``*.cleanup`` scratch files under those dirs are removed before and after.

Usable on its own: ``python tests/wasi_testsuite.py [CORPORA]`` prints one line per test and the tally.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ENARX = [sys.executable, "-m", "enarx"]


@dataclass
class Case:
    suite: str  # manifest name, as used by the expectations file
    name: str
    wasm: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    exit_code: int = 0
    stdout: str | None = None
    stderr: str | None = None

    @property
    def id(self) -> str:
        return f"{self.wasm.parent.parent.name}/{self.name}"


def discover(root: Path) -> list[Case]:
    """Every ``*.wasm`` in every suite directory under ``root`` (the wasi-testsuite folder)."""
    cases = []
    for manifest in sorted(root.glob("*/wasm32-wasip1/manifest.json")):
        suite_dir = manifest.parent
        suite = json.loads(manifest.read_text())["name"]
        for wasm in sorted(suite_dir.glob("*.wasm")):
            spec_path = wasm.with_suffix(".json")
            spec = json.loads(spec_path.read_text()) if spec_path.exists() else {}
            unknown = set(spec) - {"args", "env", "dirs", "exit_code", "stdout", "stderr"}
            if unknown:
                raise ValueError(f"{spec_path}: unsupported spec keys {sorted(unknown)}")
            cases.append(Case(suite=suite, name=wasm.stem, wasm=wasm, args=spec.get("args", []),
                              env=spec.get("env", {}), dirs=spec.get("dirs", []),
                              exit_code=spec.get("exit_code", 0), stdout=spec.get("stdout"),
                              stderr=spec.get("stderr")))
    return cases


def known_failures(root: Path) -> dict[str, dict[str, str]]:
    path = root / "expectations-wasmtime-linux.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _cleanup(dirs: list[Path]) -> None:
    for d in dirs:
        for junk in d.rglob("*.cleanup"):
            if junk.is_dir() and not junk.is_symlink():
                shutil.rmtree(junk, ignore_errors=True)
            else:
                junk.unlink(missing_ok=True)


def run_case(case: Case, timeout: float = 60) -> list[str]:
    """Run one test; returns the list of mismatches (empty = pass)."""
    host_dirs = [case.wasm.parent / d for d in case.dirs]
    _cleanup(host_dirs)
    cmd = [*ENARX, "run"]
    for key, value in case.env.items():
        cmd += ["--env", f"{key}={value}"]
    for d in case.dirs:
        cmd += ["--dir", f"{case.wasm.parent / d}::{d}"]
    cmd += [str(case.wasm), *case.args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENARX_") or k == "ENARX_CACHE_DIR"}
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              cwd=case.wasm.parent, env=env)
    except subprocess.TimeoutExpired:
        return [f"did not finish within {timeout} s"]
    finally:
        _cleanup(host_dirs)
    problems = []
    if proc.returncode != case.exit_code:
        problems.append(f"exit code {proc.returncode}, expected {case.exit_code}; stderr: "
                        f"{proc.stderr.decode(errors='replace')[-300:]!r}")
    for stream, expected in (("stdout", case.stdout), ("stderr", case.stderr)):
        if expected is not None:
            actual = getattr(proc, stream).decode(errors="replace")
            if not actual.startswith(expected):
                problems.append(f"{stream} {actual[:200]!r} does not start with {expected[:200]!r}")
    return problems


def copy_suite(corpora: Path, dest: Path) -> Path:
    """The suite writes scratch files next to its fixtures, so it runs from a private copy."""
    target = dest / "wasi-testsuite"
    if not target.exists():
        shutil.copytree(corpora / "wasi-testsuite", target)
    return target


def main(argv: list[str]) -> int:
    import tempfile

    corpora = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "corpora"
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_suite(corpora, Path(tmp))
        expected_failures = known_failures(root)
        passed = failed = known = 0
        for case in discover(root):
            problems = run_case(case)
            is_known = case.name in expected_failures.get(case.suite, {})
            if not problems:
                passed += 1
                print(f"PASS {case.id}")
            elif is_known:
                known += 1
                print(f"KNOWN {case.id}: {problems[0]}")
            else:
                failed += 1
                print(f"FAIL {case.id}: {'; '.join(problems)}")
        print(f"WASI testsuite: {passed} passed, {failed} failed, {known} known failures (wasmtime list)")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
