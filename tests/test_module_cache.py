"""The compiled-module cache as an attacker with the user's cache directory sees it: every level private,
owners checked, and each entry bound to its module — a swapped or corrupted entry is recompiled, never run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import enarx, example


def run_hello(cache: Path):
    proc = enarx("run", example("c", "hello"), env={"ENARX_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"Hello, world!\n"
    return proc


def entries(cache: Path) -> dict[str, Path]:
    return {p.name: p for p in cache.glob("modules-*/*.cwasm")}


def test_every_level_is_private(tmp_path):
    cache = tmp_path / "new" / "cache"
    run_hello(cache)
    (entry,) = entries(cache).values()
    for level in (cache.parent, cache, entry.parent):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_an_entry_copied_over_another_is_recompiled_not_run(tmp_path):
    cache = tmp_path / "cache"
    run_hello(cache)
    hello = set(entries(cache))
    assert enarx("run", example("c", "args_env"), "X", env={"ENARX_CACHE_DIR": str(cache)}).returncode == 0
    (other,) = set(entries(cache)) - hello
    (mine,) = hello
    entries(cache)[mine].write_bytes(entries(cache)[other].read_bytes())  # args_env's code under hello's name
    proc = run_hello(cache)  # still hello, not args_env
    assert "not the compiled form of this module" in proc.stderr.decode()
    assert entries(cache)[mine].read_bytes() != entries(cache)[other].read_bytes()  # rewritten
    assert b"warning" not in run_hello(cache).stderr  # and now trusted again


def test_a_corrupted_entry_is_recompiled(tmp_path):
    cache = tmp_path / "cache"
    run_hello(cache)
    (entry,) = entries(cache).values()
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of native code
    entry.write_bytes(bytes(data))
    assert "swapped or corrupted" in run_hello(cache).stderr.decode()
    assert entry.read_bytes() != bytes(data)


def test_a_group_writable_cache_is_repaired_with_a_warning(tmp_path):
    cache = tmp_path / "cache"
    run_hello(cache)
    (entry,) = entries(cache).values()
    os.chmod(cache, 0o775)
    os.chmod(entry.parent, 0o777)
    err = run_hello(cache).stderr.decode()
    assert "had mode 775; repaired to 700" in err and "had mode 777; repaired to 700" in err
    assert stat.S_IMODE(cache.stat().st_mode) == stat.S_IMODE(entry.parent.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_a_foreign_owned_cache_is_refused_with_a_warning(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    os.chown(cache, 4321, 4321)
    err = run_hello(cache).stderr.decode()
    assert "owned by uid 4321" in err and "not using cache directory" in err
    assert entries(cache) == {}  # nothing read from it or written to it




@pytest.mark.parametrize("cache,said", [("file", "not using cache directory {}: it is not a directory"),
                                        ("file/sub", "cannot use cache directory {}: Not a directory")])
def test_an_unusable_cache_warns_with_the_remedy_and_the_workload_still_runs(tmp_path, cache, said):
    (tmp_path / "file").write_text("not a directory")
    cache = tmp_path / cache
    err = run_hello(cache).stderr.decode()
    (warning,) = [line for line in err.splitlines() if "cache directory" in line]
    assert warning.startswith("warning: " + said.format(cache)), err
    assert warning.endswith("(set ENARX_CACHE_DIR to a directory of yours, or pass --no-cache)"), warning
    assert b"cache directory" not in enarx("run", "--no-cache", example("c", "hello"),
                                          env={"ENARX_CACHE_DIR": str(cache)}).stderr  # the remedy works
