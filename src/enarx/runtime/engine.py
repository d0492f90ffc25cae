"""The wasmtime engine and an on-disk cache of compiled modules, keyed by module digest and engine config.

A second run of the same module loads native code with ``Module.deserialize_file`` (under a millisecond)
instead of compiling it again (tens of milliseconds to seconds).

Security: deserializing is only safe for files this runtime wrote itself. The cache lives in a directory
private to the user (mode 0700) and is used by the nil backend; a hardware keep must not load native code
from host storage and runs with the cache disabled (``cache_dir=None``).
"""

from __future__ import annotations

import hashlib
import os

import wasmtime

# Engine settings that change generated code; part of every cache key.
ENGINE_SETTINGS = {"cranelift_opt_level": "speed", "strategy": "cranelift"}


_ENGINE: wasmtime.Engine | None = None


def make_engine() -> wasmtime.Engine:
    """The process's engine (created once: a pre-forked keep makes it before its LAUNCH arrives)."""
    global _ENGINE
    if _ENGINE is None:
        config = wasmtime.Config()
        config.cranelift_opt_level = ENGINE_SETTINGS["cranelift_opt_level"]
        _ENGINE = wasmtime.Engine(config)
    return _ENGINE


def _engine_fingerprint() -> str:
    """Identify the wasmtime build and settings, so that an upgrade never loads stale native code."""
    lib_dir = os.path.dirname(wasmtime.__file__)
    parts = [repr(sorted(ENGINE_SETTINGS.items()))]
    for sub in sorted(os.listdir(lib_dir)):
        folder = os.path.join(lib_dir, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.startswith("_libwasmtime."):
                st = os.stat(os.path.join(folder, name))
                parts.append(f"{name}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_module(engine: wasmtime.Engine, wasm: bytes | memoryview, cache_dir: str | None) -> wasmtime.Module:
    """Compile ``wasm`` or load it from the cache; raises ``wasmtime.WasmtimeError`` if it is invalid."""
    if not cache_dir:
        return wasmtime.Module(engine, bytes(wasm))
    digest = hashlib.sha256(wasm).hexdigest()
    directory = os.path.join(cache_dir, f"modules-{_engine_fingerprint()}")
    path = os.path.join(directory, f"{digest}.cwasm")
    if os.path.isfile(path):
        try:
            return wasmtime.Module.deserialize_file(engine, path)
        except wasmtime.WasmtimeError as exc:  # truncated or from another build: recompile
            _warn(f"ignoring unusable cache entry {path}: {str(exc).splitlines()[0]}")
    module = wasmtime.Module(engine, bytes(wasm))
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(module.serialize())
        os.replace(tmp, path)  # atomic: readers see a whole entry or none
    except OSError as exc:
        _warn(f"cannot write module cache in {directory}: {exc}")
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return module


def _warn(message: str) -> None:
    import logging  # only when there is something to say: logging costs start-up time

    logging.getLogger("enarx.runtime").warning("%s", message)
