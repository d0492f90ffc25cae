"""Shared fixtures: the real `enarx` CLI as a subprocess, the built examples, the shared corpora."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "build"
ENARX = [sys.executable, "-m", "enarx"]
LANGUAGES = ["c", "rust", "go", "zig"]


#: Under `make test` what the suite needs must be there: a missing corpus, corpus part or module fails.
REQUIRE_CORPORA = bool(os.environ.get("ENARX_REQUIRE_CORPORA"))
#: The corpus parts the suite reads (see ../shared/corpora/README.md).
CORPUS_PARTS = ("cases.tsv", "wasi-testsuite", "steward-csr", "sev-snp", "sgx", "tdx", "intel-ca", "aws-nitro",
                "nvidia")
#: Skip reasons that mean "something the suite needs is missing", not "this test does not apply here".
MISSING = re.compile(r"corpus|corpora|not implemented|empty parameter set|simulator not available",
                     re.IGNORECASE)


def corpora_dir() -> Path | None:
    path = Path(os.environ.get("ENARX_CORPORA", ROOT.parent / "shared" / "corpora"))
    return path if path.is_dir() else None


def _missing(message: str, required: bool) -> NoReturn:
    if required:
        pytest.fail(f"{message} (required under `make test`)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def corpora() -> Path:
    path = corpora_dir()
    if path is None:
        _missing("shared corpora not found: set ENARX_CORPORA or place ../shared/corpora", REQUIRE_CORPORA)
    return path


def example(lang: str, name: str) -> Path:
    """Path of a built example; skips (or fails under `make test`) when it has not been built."""
    path = EXAMPLES / lang / f"{name}.wasm"
    if not path.is_file():
        _missing(f"example {lang}/{name}.wasm not built: run `make examples`",
                 bool(os.environ.get("ENARX_REQUIRE_EXAMPLES")))
    return path


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under `make test` a missing corpus stops the run before tests that need it vanish as skips."""
    if not REQUIRE_CORPORA:
        return
    path = corpora_dir()
    absent = list(CORPUS_PARTS) if path is None else [p for p in CORPUS_PARTS if not (path / p).exists()]
    if absent:
        where = path or Path(os.environ.get("ENARX_CORPORA", ROOT.parent / "shared" / "corpora"))
        pytest.exit(f"shared corpus missing at {where}: {', '.join(absent)} (required under `make test`; "
                    f"set ENARX_CORPORA)", returncode=1)


def _require(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Turn a skip for something missing into a failure under `make test` (xfails are left alone)."""
    if not (REQUIRE_CORPORA and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if MISSING.search(reason):
        report.outcome = "failed"
        report.longrepr = f"{reason} (skipping is not allowed under `make test`: ENARX_REQUIRE_CORPORA=1)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    _require(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    _require(outcome.get_result())


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Share one module cache per test session (fast) but never touch the user's real cache."""
    cache = tmp_path_factory.getbasetemp() / "enarx-cache"
    monkeypatch.setenv("ENARX_CACHE_DIR", str(cache))
    monkeypatch.delenv("ENARX_BACKEND", raising=False)
    monkeypatch.delenv("ENARX_WASMCFGFILE", raising=False)
    monkeypatch.delenv("ENARX_LOG", raising=False)


def enarx(*args: str | os.PathLike[str], input: bytes | None = None, timeout: float = 120,
          cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[bytes]:
    """Run the real CLI; stdout and stderr captured as bytes."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([*ENARX, *map(str, args)], input=input, capture_output=True, timeout=timeout,
                          cwd=cwd, env=full_env, stdin=None if input is not None else subprocess.DEVNULL)


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    """A user error: non-zero status, exactly one `Error: …` line on stderr, no traceback."""
    assert proc.returncode != 0, proc
    err = proc.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the WASI conformance tally (works with xdist: it counts the forwarded reports)."""
    counts = {"passed": 0, "failed": 0, "xfailed": 0}
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            if "test_wasi_testsuite.py::test_wasi[" in getattr(report, "nodeid", "") and report.when in (
                "call", "setup"):
                counts[outcome] += 1
    if any(counts.values()):
        terminalreporter.write_line(
            f"WASI testsuite: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['xfailed']} known failures (wasmtime list)")


# -- VM keeps (kvm backend under QEMU's TCG emulator) ---------------------------------------------------
VM_PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "lz4": "lz4", "strip": "binutils", "dpkg-deb": "dpkg",
               "mke2fs": "e2fsprogs"}
VM_SESSION = f"enarx-test-{os.getpid()}"  # marks this session's QEMU processes (environment of each)


def vm_tools_installed() -> None:
    """Install what VM keeps need on a fresh machine (as `make test` does), or fail saying what is missing."""
    import shutil

    missing = [pkg for tool, pkg in VM_PACKAGES.items() if not shutil.which(tool)]
    if missing:
        base = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends"]
        if subprocess.run([*base, *missing], capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            subprocess.run([*base, *missing], capture_output=True)
    still = [tool for tool in VM_PACKAGES if not shutil.which(tool)]
    if still:
        message = f"VM keeps need {', '.join(still)} (Debian packages {', '.join(missing)})"
        if os.environ.get("ENARX_REQUIRE_EXAMPLES"):
            pytest.fail(message)
        pytest.skip(message)


def user_vm_cache() -> Path:
    """Kernels and guest images persist in the user's cache (they take a minute to make the first time)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("ENARX_VM_CACHE", os.path.join(base, "enarx", "vm")))


@pytest.fixture(scope="session")
def vm_image():
    """The guest image, built (or found in the cache) once per session."""
    vm_tools_installed()
    from enarx.backends.vm import image

    cache = user_vm_cache()
    return image.load_or_build(cache, image.default_sources(cache))


@pytest.fixture
def vm_env(vm_image, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a kvm keep under TCG; after the test, no QEMU process of this session may remain."""
    env = {"ENARX_KVM_ACCEL": "tcg", "ENARX_VM_CACHE": str(user_vm_cache()), "ENARX_TEST_VM_SESSION": VM_SESSION}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    assert_no_qemu_left()


def session_qemus() -> list[int]:
    """QEMU processes started by this test session (still running, not zombies)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"qemu-system" not in fh.read().split(b"\0", 1)[0]:
                    continue
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if f"ENARX_TEST_VM_SESSION={VM_SESSION}".encode() in fh.read().split(b"\0"):
                    found.append(int(pid))
        except (OSError, IndexError):
            continue
    return found


def assert_no_qemu_left(grace: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + grace
    while (left := session_qemus()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"QEMU processes outlived their keeps: {left}"
