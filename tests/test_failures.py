"""Traps, limits, signals, crashes and user errors: each is one clear line and a non-zero status."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import ENARX, assert_one_line_error, enarx, example


def test_trap_unreachable():
    proc = enarx("run", example("c", "trap"))
    assert proc.returncode == 134
    assert_one_line_error(subprocess.CompletedProcess(proc.args, 134, b"", proc.stderr.split(b"\n", 1)[1]),
                          "trapped", "unreachable")


def test_stack_overflow():
    assert_one_line_error(enarx("run", example("c", "stackoverflow")), "trapped: stack overflow")


def test_timeout_stops_runaway_loop():
    started = time.monotonic()
    proc = enarx("run", "--timeout", "1", example("c", "spin"))
    assert proc.returncode == 124
    assert_one_line_error(proc, "time limit of 1 s")
    assert time.monotonic() - started < 30  # generous: it did stop (no duration is asserted tightly)


def test_timeout_from_config(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
                   "[limits]\ntimeout = 0.5\n")
    proc = enarx("run", "--wasmcfgfile", cfg, example("c", "spin"))
    assert proc.returncode == 124


def test_memory_limit():
    proc = enarx("run", "--memory-limit", "64MiB", example("c", "memhog"))
    assert proc.returncode == 2
    assert b"malloc failed after" in proc.stdout
    mib = int(proc.stdout.split(b"after ")[1].split()[0])
    assert mib < 64
    assert_one_line_error(proc, "memory limit")


def test_without_memory_limit_more_memory_is_available():
    proc = enarx("run", "--memory-limit", "256MiB", example("c", "memhog"))
    mib = int(proc.stdout.split(b"after ")[1].split()[0])
    assert 128 < mib < 256


def test_memory_limit_below_module_minimum():
    assert_one_line_error(enarx("run", "--memory-limit", "1MiB", example("c", "hello")), "memory limit")


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_keep_cleanly(sig, status):
    proc = subprocess.Popen([*ENARX, "run", str(example("c", "spin"))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    keep_pids = _wait_for_children(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status
    assert err.decode().strip() == f"Error: keep stopped by {signal.Signals(sig).name}"
    for pid in keep_pids:
        assert not _alive(pid), "the keep process outlived its host"


def _started_cat_in_own_group() -> subprocess.Popen[bytes]:
    """A real `enarx run cat.wasm` leading its own process group, once its workload has echoed a line."""
    proc = subprocess.Popen([*ENARX, "run", str(example("c", "cat"))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"ready\n")
    proc.stdin.flush()
    assert proc.stdout.read(6) == b"ready\n"  # the workload runs, so the host handles signals
    return proc


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_process_group_stops_keep_cleanly(sig, status):
    """A terminal's Ctrl-C, `kill -- -PGID`, systemd: the signal reaches host and keep alike."""
    proc = _started_cat_in_own_group()
    keep_pids = _children(proc.pid)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=30)  # stdin stays open: the signal alone ends the run
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status
    assert err.decode().strip() == f"Error: keep stopped by {signal.Signals(sig).name}"
    for pid in keep_pids:
        assert not _alive(pid), "the keep process outlived its host"


@pytest.mark.parametrize("preserve,status", [(False, 124), (True, 143)])
def test_under_timeout_command(preserve, status):
    """timeout(1) signals its whole process group; with --preserve-status it passes on enarx's status."""
    flags = ["--preserve-status"] if preserve else []
    proc = subprocess.run(["timeout", *flags, "8", *ENARX, "run", str(example("c", "spin"))],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == status
    assert proc.stderr.decode().strip() == "Error: keep stopped by SIGTERM"


def test_trap_and_timeout_statuses_in_a_process_group():
    """The statuses a script sees for a trap and for --timeout do not depend on how it was started."""
    for module, extra, status in (("trap", [], 134), ("spin", ["--timeout", "0.5"], 124)):
        proc = subprocess.run([*ENARX, "run", *extra, str(example("c", module))], capture_output=True,
                              timeout=60, start_new_session=True, stdin=subprocess.DEVNULL)
        assert proc.returncode == status, proc.stderr


def test_keep_crash_is_reported_not_hung():
    proc = subprocess.Popen([*ENARX, "run", str(example("c", "spin"))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    (keep,) = _wait_for_children(proc.pid)
    os.kill(keep, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.decode().strip() == "Error: keep crashed: killed by SIGKILL"


def test_killed_host_takes_keep_down():
    proc = subprocess.Popen([*ENARX, "run", str(example("c", "spin"))], stdin=subprocess.DEVNULL)
    (keep,) = _wait_for_children(proc.pid)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(keep) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(keep)


def test_missing_file():
    assert_one_line_error(enarx("run", "/nonexistent/app.wasm"), "no such file")


def test_not_wasm(tmp_path):
    bad = tmp_path / "app.wasm"
    bad.write_bytes(b"#!/bin/sh\necho hi\n")
    assert_one_line_error(enarx("run", bad), "not a WebAssembly module")


def test_malformed_wasm(tmp_path):
    bad = tmp_path / "app.wasm"
    bad.write_bytes(example("c", "hello").read_bytes()[:200])
    assert_one_line_error(enarx("run", bad), "not a valid WebAssembly module")


def test_component_is_refused(tmp_path):
    comp = tmp_path / "c.wasm"
    comp.write_bytes(b"\0asm\x0d\x00\x01\x00")
    assert_one_line_error(enarx("run", comp), "component")


def test_bad_enarx_toml(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('[[files]]\nkind = "listen"\nname = "x"\nprot = "udp"\n')
    line = assert_one_line_error(enarx("run", "--wasmcfgfile", cfg, example("c", "hello")))
    assert str(cfg) in line and "files[0].prot" in line


def test_unparsable_enarx_toml(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text("[[files]\n")
    assert_one_line_error(enarx("run", "--wasmcfgfile", cfg, example("c", "hello")), "not valid TOML")


def test_missing_config_file(tmp_path):
    assert_one_line_error(enarx("run", "--wasmcfgfile", tmp_path / "nope.toml", example("c", "hello")),
                          "no such file")


def test_missing_dir_preopen(tmp_path):
    assert_one_line_error(enarx("run", "--dir", str(tmp_path / "nope"), example("c", "hello")),
                          f"{tmp_path / 'nope'}: no such directory to preopen; create it")


def test_file_given_as_dir_preopen():
    module = example("c", "hello")
    assert_one_line_error(enarx("run", "--dir", module, module), f"{module}: not a directory")


@pytest.mark.parametrize("option,value,why", [("--memory-limit", "lots", "expected a size such as"),
                                              ("--timeout", "-3", "must be a positive number of seconds"),
                                              ("--env", "NOEQUALS", "expected KEY=VALUE")])
def test_bad_option_values(option, value, why):
    proc = enarx("run", option, value, example("c", "hello"))
    assert_one_line_error(proc, option, value, why, "(see `enarx run --help`)")
    assert proc.returncode == 2  # a usage error


def test_debug_logging_shows_details_on_stderr():
    proc = enarx("--log-filter", "debug", "run", example("c", "hello"))
    assert proc.returncode == 0 and proc.stdout == b"Hello, world!\n"
    assert b"nil backend" in proc.stderr


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _wait_for_children(pid: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = _children(pid)
        if kids:
            time.sleep(0.5)  # let the workload start spinning
            return kids
        time.sleep(0.02)
    raise AssertionError("no keep process appeared")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_closed_stdout_pipe_ends_the_keep_quietly():
    """`enarx run … | head -c 10`: like a native program, the keep stops (SIGPIPE status), no error."""
    proc = subprocess.Popen(f"{' '.join(ENARX)} run {example('c', 'spew')} 100 | head -c 10; "
                            'echo "status ${PIPESTATUS[0]}" >&2', shell=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, executable="/bin/bash")
    out, err = proc.communicate(timeout=60)
    assert out == b"x" * 10
    assert err.strip() == b"status 141"  # SIGPIPE's status, and no error line


def test_newcomer_mistakes_name_the_thing_and_what_to_do(tmp_path):
    """Wrong inputs a newcomer makes: each is one line naming the path or variable, and the way out."""
    hello = example("c", "hello")
    (tmp_path / "p1" / "main.wasm").mkdir(parents=True)
    (tmp_path / "p2" / "Enarx.toml").mkdir(parents=True)
    (tmp_path / "p2" / "main.wasm").write_bytes(hello.read_bytes())
    (tmp_path / "p3").mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        (["run", tmp_path / "p1"], 1, f"{tmp_path}/p1/main.wasm: is a directory, expected a WebAssembly module"),
        (["run", tmp_path / "p2"], 1, f"{tmp_path}/p2/Enarx.toml: is a directory; a package's Enarx.toml must"),
        (["run", tmp_path / "p3"], 1, "package directory has no main.wasm; put the module there"),
        (["run", ""], 2, "MODULE: expected a .wasm file or a package directory"),
        (["run", "--simulate-tee", "sgx", "--simulator-pki", a_file, hello], 1, f"{a_file}: not a directory"),
        (["--log-filter", "loud", "platform", "info"], 2, "unknown log level 'loud'; use error, warn"),
        (["platform", "info"], 2, "--log-filter (from $ENARX_LOG): unknown log level 'loud'"),
    ]
    for args, status, fragment in cases:
        env = {"ENARX_LOG": "loud"} if args == ["platform", "info"] else None
        proc = enarx(*args, env=env)
        assert_one_line_error(proc, fragment)
        assert proc.returncode == status, (args, proc.stderr)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="reads the x86-64 syscall number of openat")
def test_signal_before_the_keep_runs_is_one_line(tmp_path):
    """SIGTERM while enarx is still reading its module (here a FIFO nobody writes): 143 and one line."""
    fifo = tmp_path / "app.wasm"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*ENARX, "run", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _blocked_in_openat(proc.pid):
        assert time.monotonic() < deadline, "enarx never opened its module"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.decode() == "Error: stopped by SIGTERM\n"


def _blocked_in_openat(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as fh:
            return fh.read().split()[0] == "257"  # openat, waiting for a FIFO's writer
    except (OSError, IndexError):
        return False
