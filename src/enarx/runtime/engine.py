"""The wasmtime engine and an on-disk cache of compiled modules, keyed by module digest and engine config.

A second run of the same module loads native code with ``Module.deserialize_file`` (under a millisecond)
instead of compiling it again (tens of milliseconds to seconds).

Security: deserializing is only safe for files this runtime wrote itself. Every level of the cache is a
directory private to the user (0700, owned by the user: a looser mode is repaired and a foreign owner
refused, with a warning), and each entry carries the digests of its module and of itself, checked before
wasmtime sees it: a swapped or corrupted entry is recompiled with a warning, never run. The cache is used by
the nil backend; a hardware keep must not load native code from host storage and runs with the cache
disabled (``cache_dir=None``).
"""

from __future__ import annotations

import hashlib
import hmac
import os

import wasmtime

# Engine settings that change generated code; part of every cache key.
ENGINE_SETTINGS = {"cranelift_opt_level": "speed", "strategy": "cranelift"}


_ENGINE: wasmtime.Engine | None = None
_ENGINE_PID = 0

# An entry is this header, then wasmtime's serialized module. The header binds the entry to the module it
# was compiled from (its SHA-256) and to its own bytes (their SHA-256): an entry copied over another, or
# corrupted, is detected before wasmtime sees it.
_MAGIC = b"enarx-cwasm-v1\n\0"
_HEADER_SIZE = len(_MAGIC) + 32 + 32
# A keep forked from a process that had already loaded this module (an API user, a test process) may have
# inherited wasmtime's compilation thread pool without its threads: compiling with it would wait forever.
_IMPORTED_IN = os.getpid()


def make_engine() -> wasmtime.Engine:
    """The process's engine (created once: a pre-forked keep makes it before its LAUNCH arrives)."""
    global _ENGINE, _ENGINE_PID
    if _ENGINE is None or _ENGINE_PID != os.getpid():
        config = wasmtime.Config()
        config.cranelift_opt_level = ENGINE_SETTINGS["cranelift_opt_level"]
        if os.getpid() != _IMPORTED_IN:
            config.parallel_compilation = False
        _ENGINE, _ENGINE_PID = wasmtime.Engine(config), os.getpid()
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
    from enarx.runtime.cachedir import private_dir

    digest = hashlib.sha256(wasm).digest()
    directory = os.path.join(cache_dir, f"modules-{_engine_fingerprint()}")
    if not (private_dir(cache_dir, _warn) and private_dir(directory, _warn)):
        return wasmtime.Module(engine, bytes(wasm))
    path = os.path.join(directory, f"{digest.hex()}.cwasm")
    module = _load_entry(engine, path, digest)
    if module is None:
        module = wasmtime.Module(engine, bytes(wasm))
        _store_entry(path, digest, module.serialize())
    return module


def _load_entry(engine: wasmtime.Engine, path: str, digest: bytes) -> wasmtime.Module | None:
    """The cached module for ``digest``, or ``None`` (absent, or refused with a warning: never run)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _warn(f"ignoring cache entry {path}: {exc.strerror or exc}")
        return None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    header, payload = data[:_HEADER_SIZE], memoryview(data)[_HEADER_SIZE:]
    if (len(header) != _HEADER_SIZE or header[:len(_MAGIC)] != _MAGIC
            or not hmac.compare_digest(header[len(_MAGIC):len(_MAGIC) + 32], digest)
            or not hmac.compare_digest(header[len(_MAGIC) + 32:], hashlib.sha256(payload).digest())):
        _warn(f"cache entry {path} is not the compiled form of this module (swapped or corrupted); recompiling")
        return None
    try:
        return wasmtime.Module.deserialize(engine, bytes(payload))
    except wasmtime.WasmtimeError as exc:  # from another wasmtime build: recompile
        _warn(f"ignoring unusable cache entry {path}: {str(exc).splitlines()[0]}")
        return None


def _store_entry(path: str, digest: bytes, native: bytes) -> None:
    """Write an entry atomically: readers see a whole entry or none."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + digest + hashlib.sha256(native).digest())
            fh.write(native)
        os.replace(tmp, path)
    except OSError as exc:
        _warn(f"cannot write module cache entry {path}: {exc.strerror or exc}")
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _warn(message: str) -> None:
    import logging  # only when there is something to say: logging costs start-up time

    logging.getLogger("enarx.runtime").warning("warning: %s", message)
