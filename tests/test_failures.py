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
    assert_one_line_error(enarx("run", "--dir", str(tmp_path / "nope"), example("c", "hello")), "does not exist")


@pytest.mark.parametrize("option,value,why", [("--memory-limit", "lots", "expected a size such as"),
                                              ("--timeout", "-3", "must be a positive number of seconds"),
                                              ("--env", "NOEQUALS", "expected KEY=VALUE")])
def test_bad_option_values(option, value, why):
    assert_one_line_error(enarx("run", option, value, example("c", "hello")), option, value, why)


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
