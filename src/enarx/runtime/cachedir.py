"""Where compiled modules are cached (no wasmtime import: the host needs only the path)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$ENARX_CACHE_DIR``, else ``$XDG_CACHE_HOME/enarx``, else ``~/.cache/enarx``."""
    if env := os.environ.get("ENARX_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "enarx"
