"""The wasmtime engine and an on-disk cache of compiled modules, keyed by module digest and engine config.

A second run of the same module loads native code with ``Module.deserialize_file`` (under a millisecond)
instead of compiling it again (tens of milliseconds to seconds).

Security: deserializing is only safe for files this runtime wrote itself. The cache lives in a directory
private to the user (mode 0700) and is used by the nil backend; a hardware keep must not load native code
from host storage and runs with the cache disabled (``cache_dir=None``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import wasmtime

log = logging.getLogger("enarx.runtime")

# Engine settings that change generated code; part of every cache key.
ENGINE_SETTINGS = {"cranelift_opt_level": "speed", "strategy": "cranelift"}


def make_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.cranelift_opt_level = ENGINE_SETTINGS["cranelift_opt_level"]
    return wasmtime.Engine(config)


def _engine_fingerprint() -> str:
    """Identify the wasmtime build and settings, so that an upgrade never loads stale native code."""
    lib_dir = Path(wasmtime.__file__).parent
    parts = [repr(sorted(ENGINE_SETTINGS.items()))]
    for lib in sorted(lib_dir.glob("*/_libwasmtime.*")):
        st = lib.stat()
        parts.append(f"{lib.name}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_module(engine: wasmtime.Engine, wasm: bytes | memoryview, cache_dir: str | None) -> wasmtime.Module:
    """Compile ``wasm`` or load it from the cache; raises ``wasmtime.WasmtimeError`` if it is invalid."""
    if not cache_dir:
        return wasmtime.Module(engine, bytes(wasm))
    digest = hashlib.sha256(wasm).hexdigest()
    directory = Path(cache_dir) / f"modules-{_engine_fingerprint()}"
    path = directory / f"{digest}.cwasm"
    if path.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError as exc:  # truncated or from another build: recompile
            log.warning("ignoring unusable cache entry %s: %s", path, str(exc).splitlines()[0])
    module = wasmtime.Module(engine, bytes(wasm))
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(module.serialize())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write module cache in %s: %s", directory, exc)
    return module
