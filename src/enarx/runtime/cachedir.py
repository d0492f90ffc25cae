"""Where compiled modules are cached (no wasmtime import: the host needs only the path)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

REMEDY = "running without the module cache (set ENARX_CACHE_DIR to a directory of yours, or pass --no-cache)"


def default_cache_dir() -> Path:
    """``$ENARX_CACHE_DIR``, else ``$XDG_CACHE_HOME/enarx``, else ``~/.cache/enarx``."""
    if env := os.environ.get("ENARX_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "enarx"


def private_dir(path: str, warn: Callable[[str], None]) -> bool:
    """Make sure ``path`` is a directory only this user can use: created 0700, or an existing one owned by
    this user (a looser mode is repaired, with a warning). False, with a warning saying what to do, when it
    cannot be used."""
    try:
        _make_dirs(path)
        info = os.stat(path)
    except OSError as exc:
        warn(f"cannot use cache directory {path}: {exc.strerror or exc}; {REMEDY}")
        return False
    if not stat.S_ISDIR(info.st_mode):
        warn(f"not using cache directory {path}: it is not a directory; {REMEDY}")
        return False
    if info.st_uid != os.geteuid():
        warn(f"not using cache directory {path}: it is owned by uid {info.st_uid}, not by this user; {REMEDY}")
        return False
    if info.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            warn(f"not using cache directory {path}: mode {stat.S_IMODE(info.st_mode):o} lets others in and "
                 f"cannot be repaired: {exc.strerror or exc}; {REMEDY}")
            return False
        warn(f"cache directory {path} had mode {stat.S_IMODE(info.st_mode):o}; repaired to 700")
    return True


def _make_dirs(path: str) -> None:
    """``os.makedirs`` with mode 0700 for every directory it creates (it gives missing parents 0777)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
