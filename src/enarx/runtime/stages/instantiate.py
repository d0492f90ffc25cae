"""Stages: compile the module, configure its WASI view, and instantiate it in a fresh store."""

from __future__ import annotations

import os

from enarx.protocol import FrameType
from enarx.runtime.launch import Launch, StageFailure, config_failure
from enarx.runtime.stdio import OutputPump, make_pipe


def compile_module(launch: Launch) -> None:
    """Compile (or load from the module cache) and find the entry point."""
    import wasmtime

    from enarx.runtime.engine import load_module, make_engine

    name = launch.request.module_name
    launch.engine = make_engine()
    if launch.native is not None:  # native code a stage decided to trust (a kvm guest: the host's cache)
        try:
            launch.module = wasmtime.Module.deserialize(launch.engine, bytes(launch.native))
        except wasmtime.WasmtimeError as exc:
            _log_warning("ignoring the precompiled module: %s", first_line(exc))
    try:
        if launch.module is None:
            launch.module = load_module(launch.engine, launch.module_bytes, launch.request.cache_dir)
    except wasmtime.WasmtimeError as exc:
        raise StageFailure(f"{name}: not a valid WebAssembly module: {first_line(exc)}") from None
    launch.entry = entry_point(launch.module)
    if launch.entry is None:
        raise StageFailure(f"{name}: no `_start` or default export to call (is it a WASI command?)")


def configure_wasi(launch: Launch) -> None:
    """argv, environment, stdio pipes, preopened directories and the fd numbers reserved for sockets."""
    import wasmtime

    plan = launch.need_plan()
    wasi = wasmtime.WasiConfig()
    wasi.argv = plan.argv
    wasi.env = [list(pair) for pair in plan.env]
    if plan.stdin:
        read_fd, write_fd = make_pipe()
        launch.stdin.attach(write_fd)
        wasi.stdin_file = f"/dev/fd/{read_fd}"
        launch.fds_to_close.append(read_fd)
        if launch.sockets is not None:
            launch.stdin_poll_fd = os.dup(read_fd)
    else:
        launch.stdin.discard()
    for name, ftype in (("stdout", FrameType.STDOUT), ("stderr", FrameType.STDERR)):
        if getattr(plan, name):
            read_fd, write_fd = make_pipe()
            setattr(wasi, f"{name}_file", f"/dev/fd/{write_fd}")
            launch.fds_to_close.append(write_fd)
            launch.pumps.append(OutputPump(read_fd, launch.channel, ftype))  # type: ignore[arg-type]
    for pre in plan.preopens:
        from enarx.config.confine import open_dir, opened_path
        from enarx.errors import ConfigError

        try:  # opened here (inside the package for a package's entries), then handed to wasmtime by fd
            fd = open_dir(pre.host, pre.root, f"preopen {pre.guest!r}")
        except ConfigError as exc:
            raise config_failure(launch, str(exc)) from None
        try:
            wasi.preopen_dir(opened_path(fd), pre.guest, fs_mutable=pre.writable)
        except wasmtime.WasmtimeError as exc:
            raise config_failure(launch, f"cannot preopen {pre.host!r}: {first_line(exc)}") from None
        finally:
            os.close(fd)
    if launch.sockets is not None:
        # Reserve each socket's fd number in wasmtime's table with an empty read-only directory, so that
        # wasmtime never hands that number out; the dispatcher routes the fd to Python first.
        import tempfile

        launch.placeholder_dir = tempfile.mkdtemp(prefix="enarx-socket-")
        for fd, _entry in plan.sockets:
            wasi.preopen_dir(launch.placeholder_dir, f"/.enarx-socket-{fd}", fs_mutable=False)
    launch.wasi = wasi


def instantiate(launch: Launch) -> None:
    """A store with the memory limit and WASI, the pumps running, the sockets attached, the instance made."""
    import wasmtime

    plan = launch.need_plan()
    store = launch.store = wasmtime.Store(launch.engine)
    if plan.memory_limit is not None:
        store.set_limits(memory_size=plan.memory_limit)
    store.set_wasi(launch.wasi)
    launch.wasi = None
    for fd in launch.fds_to_close:  # wasmtime holds its own descriptors now
        os.close(fd)
    launch.fds_to_close = []
    if launch.placeholder_dir is not None:
        os.rmdir(launch.placeholder_dir)
        launch.placeholder_dir = None
    for pump in launch.pumps:
        pump.start()

    linker = wasmtime.Linker(launch.engine)
    linker.define_wasi()
    try:
        if launch.sockets is not None:
            _attach_sockets(launch, linker)
        launch.instance = linker.instantiate(store, launch.module)
    except wasmtime.WasmtimeError as exc:
        raise StageFailure(_instantiate_error(exc, plan.memory_limit)) from None
    launch.memory = launch.instance.exports(store).get("memory")


def _attach_sockets(launch: Launch, linker) -> None:
    """Create the shared memory, the Python socket calls and the dispatcher; shadow WASI with it."""
    import wasmtime

    from enarx.runtime.engine import load_module
    from enarx.runtime.net.abi import SocketCalls
    from enarx.runtime.net.dispatcher import dispatcher_wat
    from enarx.runtime.net.wasmedit import IMPORT_MODULE

    store, engine, sockets = launch.store, launch.engine, launch.sockets
    mem_module, mem_name, limits = launch.memory_import
    memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(limits.minimum, limits.maximum)))
    linker.define(store, mem_module, mem_name, memory)
    if mem_module != IMPORT_MODULE or mem_name != "memory":
        linker.define(store, IMPORT_MODULE, "memory", memory)
    fds = list(sockets.entries)
    i32 = wasmtime.GlobalType(wasmtime.ValType.i32(), False)
    linker.define(store, IMPORT_MODULE, "sock_lo", wasmtime.Global(store, i32, min(fds)))
    linker.define(store, IMPORT_MODULE, "sock_hi", wasmtime.Global(store, i32, max(fds) + 1))
    SocketCalls(sockets, memory, store, launch.stdin_poll_fd).define(linker)
    dispatcher_module = load_module(engine, wasmtime.wat2wasm(dispatcher_wat()), launch.request.cache_dir)
    dispatcher = linker.instantiate(store, dispatcher_module)
    linker.allow_shadowing = True
    for name, item in dispatcher.exports(store).items():
        if name != "memory":
            linker.define(store, "wasi_snapshot_preview1", name, item)


def _log_warning(message: str, *args: object) -> None:
    import logging

    logging.getLogger("enarx.keep").warning(message, *args)


def entry_point(module: object) -> str | None:
    """``_start`` (a WASI command) or the default export, if it takes no parameters."""
    import wasmtime

    names = {e.name: e.type for e in module.exports}  # type: ignore[attr-defined]
    for name in ("_start", ""):
        typ = names.get(name)
        if isinstance(typ, wasmtime.FuncType) and not typ.params:
            return name
    return None


def _instantiate_error(exc: Exception, memory_limit: int | None) -> str:
    text = first_line(exc)
    if "memory" in text and "limit" in text and memory_limit is not None:
        return f"memory limit of {size_text(memory_limit)} is below the module's initial memory ({text})"
    if "unknown import" in text:
        return f"the module imports something this runtime does not provide: {text}"
    return f"cannot instantiate the module: {text}"


def size_text(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # wasmtime errors read "error while executing at wasm backtrace: ... Caused by: <reason>"
    for i, line in enumerate(lines):
        if line.startswith("Caused by"):
            return lines[i + 1] if i + 1 < len(lines) else line
    return lines[0] if lines else type(exc).__name__
