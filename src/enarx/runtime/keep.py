"""The keep's main loop: read LAUNCH, run the workload, report stdio and the exit status.

Threads: the main thread runs wasm (wasmtime releases the GIL); one thread reads control frames
(STDIN, STOP); one pump per output stream. A stop request or the wall-clock limit ends the keep from
the control side: buffered output is flushed, an EXIT frame is sent, and the process exits at once —
so a runaway loop is stopped without the per-instruction cost of epoch or fuel interruption.
"""

from __future__ import annotations

import json
import os
import socket
import threading

from enarx.errors import ConfigError
from enarx.protocol import (
    MAX_HOST_TO_KEEP,
    PROTOCOL_VERSION,
    Channel,
    ExitReport,
    FrameType,
    LaunchRequest,
    ProtocolError,
)
from enarx.runtime.plan import WorkloadPlan, plan_workload
from enarx.runtime.stdio import OutputPump, StdinFeeder, make_pipe

STATUS_TRAP = 134  # like wasmtime's CLI: a trap is an abort
STATUS_TIMEOUT = 124  # like timeout(1)
STATUS_SIGNAL = {"SIGINT": 130, "SIGTERM": 143, "SIGPIPE": 141}
STATUS_ERROR = 1

_TRAP_NAMES = {
    "STACK_OVERFLOW": "stack overflow",
    "MEMORY_OUT_OF_BOUNDS": "out-of-bounds memory access",
    "HEAP_MISALIGNED": "misaligned memory access",
    "TABLE_OUT_OF_BOUNDS": "out-of-bounds table access",
    "INDIRECT_CALL_TO_NULL": "indirect call to a null table entry",
    "BAD_SIGNATURE": "indirect call signature mismatch",
    "INTEGER_OVERFLOW": "integer overflow",
    "INTEGER_DIVISION_BY_ZERO": "integer division by zero",
    "BAD_CONVERSION_TO_INTEGER": "invalid conversion to integer",
    "UNREACHABLE": "unreachable instruction executed",
    "INTERRUPT": "interrupted",
    "OUT_OF_FUEL": "out of fuel",
}


def _log_to_channel(channel: Channel, level: str) -> None:
    """Send the keep runtime's log records to the host as LOG frames (logging is imported only then)."""
    import logging

    class ChannelLogHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                channel.send(FrameType.LOG, self.format(record).encode("utf-8", "replace"))
            except OSError:
                pass

    handler = ChannelLogHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("enarx")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _log_info(message: str, *args: object) -> None:
    import logging

    logging.getLogger("enarx.keep").info(message, *args)


class Keep:
    """One keep process: its channel to the host, its stdio pumps, and its identity."""

    def __init__(self, sock: socket.socket):
        self.channel = Channel(sock, max_incoming=MAX_HOST_TO_KEEP)
        self.pumps: list[OutputPump] = []
        self.stdin: StdinFeeder | None = None
        self._finish_lock = threading.Lock()
        self._finished = False
        self.identity = None  # KeepIdentity: made when TLS needs it (or filled by the Steward flow)

    # -- ending -------------------------------------------------------------------------------------
    def finish(self, report: ExitReport, *, abrupt: bool) -> None:
        """Send the one EXIT frame and end the process. Safe to call from any thread, once."""
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
            for pump in self.pumps:
                if pump.ident is None:
                    continue
                if abrupt:
                    pump.stop()
                pump.join(timeout=5)
            try:
                self.channel.send(FrameType.EXIT, report.encode())
                self.channel.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            os._exit(report.status)

    # -- control ------------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        try:
            while frame := self.channel.recv():
                if frame.type == FrameType.STDIN:
                    if self.stdin is not None:
                        self.stdin.queue.put(frame.payload)
                elif frame.type == FrameType.STOP:
                    signal = _json(frame.payload).get("signal", "SIGTERM")
                    status = STATUS_SIGNAL.get(signal, 143)
                    self.finish(ExitReport(status, "signal", f"keep stopped by {signal}"), abrupt=True)
                else:
                    raise ProtocolError(f"unexpected {frame.type.name} frame from the host")
        except (ProtocolError, OSError) as exc:
            self.finish(ExitReport(STATUS_ERROR, "error", f"keep channel failed: {exc}"), abrupt=True)
        # The host closed the channel: nobody is left to report to.
        self.finish(ExitReport(STATUS_ERROR, "error", "host closed the channel"), abrupt=True)

    def _start_timer(self, seconds: float) -> None:
        def expire() -> None:
            self.finish(
                ExitReport(STATUS_TIMEOUT, "timeout", f"workload exceeded its time limit of {seconds:g} s"),
                abrupt=True,
            )

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()

    # -- main ---------------------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            frame = self.channel.recv()
            if frame is None or frame.type != FrameType.LAUNCH:
                raise ProtocolError("expected a LAUNCH frame first")
            req, module_bytes = LaunchRequest.decode(frame.payload)
        except (ProtocolError, OSError) as exc:
            self.finish(ExitReport(STATUS_ERROR, "error", f"keep launch failed: {exc}"), abrupt=True)
            return
        if req.log_level:
            _log_to_channel(self.channel, req.log_level)
        try:
            plan = plan_workload(req)
        except ConfigError as exc:
            self.finish(ExitReport(STATUS_ERROR, "error", str(exc)), abrupt=True)
            return
        stdin_read_fd: int | None = None
        if plan.stdin:  # before the control loop starts, so that no STDIN frame can be missed
            stdin_read_fd, w = make_pipe()
            self.stdin = StdinFeeder(w)
            self.stdin.start()
        threading.Thread(target=self._control_loop, name="control", daemon=True).start()
        self.finish(self._run(req, plan, module_bytes, stdin_read_fd), abrupt=False)

    def _run(self, req: LaunchRequest, plan: WorkloadPlan, module_bytes: memoryview,
             stdin_read_fd: int | None) -> ExitReport:
        import wasmtime

        from enarx.runtime.engine import load_module, make_engine

        engine = make_engine()
        if plan.config is not None and plan.config.steward:
            from enarx.errors import KeepError

            try:
                self.identity = self._attest(req, plan.config.steward, module_bytes)
            except KeepError as exc:
                return ExitReport(STATUS_ERROR, "error", str(exc))
        sockets = None
        if plan.sockets:  # bound and connected before anything else, so that failures stop us early
            from enarx.errors import KeepError
            from enarx.runtime.identity import KeepIdentity
            from enarx.runtime.net.sockets import open_sockets
            from enarx.runtime.net.wasmedit import WasmEditError, import_memory

            if plan.needs_identity and self.identity is None:
                self.identity = KeepIdentity.generate().self_sign()
            try:
                sockets = open_sockets(plan.sockets, self.identity, req.config_source or "Enarx.toml")
            except KeepError as exc:
                return ExitReport(STATUS_ERROR, "error", str(exc))
            try:
                module_bytes, mem_module, mem_name, mem_limits = import_memory(bytes(module_bytes))
            except (WasmEditError, IndexError) as exc:
                return ExitReport(STATUS_ERROR, "error", f"{req.module_name}: cannot attach sockets: {exc}")
        try:
            module = load_module(engine, module_bytes, req.cache_dir)
        except wasmtime.WasmtimeError as exc:
            return ExitReport(STATUS_ERROR, "error", f"{req.module_name}: not a valid WebAssembly module: "
                              f"{_first_line(exc)}")
        entry = _entry_point(module)
        if entry is None:
            return ExitReport(STATUS_ERROR, "error",
                              f"{req.module_name}: no `_start` or default export to call (is it a WASI command?)")

        wasi = wasmtime.WasiConfig()
        wasi.argv = plan.argv
        wasi.env = [list(pair) for pair in plan.env]
        to_close: list[int] = []
        if stdin_read_fd is not None:
            wasi.stdin_file = f"/dev/fd/{stdin_read_fd}"
            to_close.append(stdin_read_fd)
        for name, ftype in (("stdout", FrameType.STDOUT), ("stderr", FrameType.STDERR)):
            if getattr(plan, name):
                r, w = make_pipe()
                setattr(wasi, f"{name}_file", f"/dev/fd/{w}")
                to_close.append(w)
                self.pumps.append(OutputPump(r, self.channel, ftype))
        for pre in plan.preopens:
            if not os.path.isdir(pre.host):
                return ExitReport(STATUS_ERROR, "error",
                                  f"directory {pre.host!r} (guest {pre.guest!r}) does not exist")
            try:
                wasi.preopen_dir(pre.host, pre.guest, fs_mutable=pre.writable)
            except wasmtime.WasmtimeError as exc:
                return ExitReport(STATUS_ERROR, "error", f"cannot preopen {pre.host!r}: {_first_line(exc)}")

        placeholder = None
        if sockets is not None:
            # Reserve each socket's fd number in wasmtime's table with an empty read-only directory, so
            # that wasmtime never hands that number out; the dispatcher routes the fd to Python first.
            import tempfile

            placeholder = tempfile.mkdtemp(prefix="enarx-socket-")
            for fd, _entry in plan.sockets:
                wasi.preopen_dir(placeholder, f"/.enarx-socket-{fd}", fs_mutable=False)
        stdin_poll_fd = os.dup(stdin_read_fd) if sockets is not None and stdin_read_fd is not None else None

        store = wasmtime.Store(engine)
        if plan.memory_limit is not None:
            store.set_limits(memory_size=plan.memory_limit)
        store.set_wasi(wasi)
        for fd in to_close:  # wasmtime holds its own descriptors now
            os.close(fd)
        if placeholder is not None:
            os.rmdir(placeholder)
        del wasi
        for pump in self.pumps:
            pump.start()

        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        report: ExitReport
        try:
            if sockets is not None:
                self._attach_sockets(engine, store, linker, sockets, mem_module, mem_name, mem_limits,
                                     stdin_poll_fd, req.cache_dir)
            instance = linker.instantiate(store, module)
        except wasmtime.WasmtimeError as exc:
            return self._close(store, ExitReport(STATUS_ERROR, "error", _instantiate_error(exc, plan)))
        memory = instance.exports(store).get("memory")
        if plan.timeout is not None:
            self._start_timer(plan.timeout)
        started = {"protocol": PROTOCOL_VERSION, "listening": sockets.listening if sockets else []}
        self.channel.send(FrameType.STARTED, json.dumps(started).encode())
        try:
            instance.exports(store)[entry](store)
            report = ExitReport(0)
        except wasmtime.ExitTrap as exc:
            report = ExitReport(exc.code & 0xFF)
        except wasmtime.Trap as exc:
            code = exc.trap_code.name if exc.trap_code is not None else ""
            name = _TRAP_NAMES.get(code, _first_line(exc))
            report = ExitReport(STATUS_TRAP, "trap", f"workload trapped: {name}")
        except wasmtime.WasmtimeError as exc:
            report = ExitReport(STATUS_TRAP, "trap", f"workload failed: {_first_line(exc)}")
        if plan.memory_limit is not None and report.status != 0 and isinstance(memory, wasmtime.Memory):
            used = memory.data_len(store)
            if used >= plan.memory_limit * 0.9:  # a memory.grow was (almost certainly) refused
                note = f"it had used {_size(used)} of its {_size(plan.memory_limit)} memory limit"
                if report.kind == "exit":
                    report = ExitReport(report.status, "memory",
                                        f"workload exited with status {report.status}; {note}")
                else:
                    report = report._replace(error=f"{report.error}; {note}")
        return self._close(store, report)

    @staticmethod
    def _attest(req: LaunchRequest, steward_url: str, module_bytes: memoryview):
        """Get the keep certified by its Steward before the workload runs (Enarx §6)."""
        from pathlib import Path

        from cryptography.hazmat.primitives.asymmetric import ec

        from enarx.attestation.binding import report_data_for
        from enarx.runtime.attest.csr import build_csr
        from enarx.runtime.attest.steward import check_url, request_certificate
        from enarx.runtime.identity import KeepIdentity

        check_url(steward_url)
        if req.simulate_tee:
            from enarx.runtime.attest.simulated import simulated_source

            if req.simulator_dir:
                directory = Path(req.simulator_dir)
            else:
                from enarx.runtime.cachedir import default_cache_dir

                directory = default_cache_dir() / "simulator"
            source = simulated_source(req.simulate_tee, directory, module_bytes)
        else:
            source = _platform_evidence()
        key = ec.generate_private_key(source.curve())
        oid, value = source.extension(report_data_for(key, source.tee))
        chain = request_certificate(steward_url, build_csr(key, oid, value))
        _log_info("certified by %s as %s", steward_url, chain[0].subject.rfc4514_string() or "(empty subject)")
        return KeepIdentity(key, chain)

    @staticmethod
    def _attach_sockets(engine, store, linker, sockets, mem_module: str, mem_name: str, limits,
                        stdin_poll_fd: int | None, cache_dir: str | None) -> None:
        """Create the shared memory, the Python socket calls and the dispatcher; shadow WASI with it."""
        import wasmtime

        from enarx.runtime.engine import load_module
        from enarx.runtime.net.abi import SocketCalls
        from enarx.runtime.net.dispatcher import dispatcher_wat
        from enarx.runtime.net.wasmedit import IMPORT_MODULE

        memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(limits.minimum, limits.maximum)))
        linker.define(store, mem_module, mem_name, memory)
        if mem_module != IMPORT_MODULE or mem_name != "memory":
            linker.define(store, IMPORT_MODULE, "memory", memory)
        fds = [fd for fd in sockets.entries]
        i32 = wasmtime.GlobalType(wasmtime.ValType.i32(), False)
        linker.define(store, IMPORT_MODULE, "sock_lo", wasmtime.Global(store, i32, min(fds)))
        linker.define(store, IMPORT_MODULE, "sock_hi", wasmtime.Global(store, i32, max(fds) + 1))
        SocketCalls(sockets, memory, store, stdin_poll_fd).define(linker)
        dispatcher = linker.instantiate(store, load_module(engine, wasmtime.wat2wasm(dispatcher_wat()), cache_dir))
        linker.allow_shadowing = True
        for name, item in dispatcher.exports(store).items():
            if name != "memory":
                linker.define(store, "wasi_snapshot_preview1", name, item)

    @staticmethod
    def _close(store: object, report: ExitReport) -> ExitReport:
        store.close()  # type: ignore[attr-defined]  # closes wasmtime's stdio, so the pumps see EOF
        return report


def _platform_evidence():
    """The evidence this machine can give: a confidential guest's own (SEV-SNP, TDX), else none (nil/kvm)."""
    from enarx.runtime.attest.evidence import NilEvidence, SnpGuestEvidence, TdxGuestEvidence

    if os.path.exists("/dev/sev-guest"):
        return SnpGuestEvidence()
    if os.path.exists("/dev/tdx_guest"):
        return TdxGuestEvidence()
    return NilEvidence()


def _entry_point(module: object) -> str | None:
    import wasmtime

    names = {e.name: e.type for e in module.exports}  # type: ignore[attr-defined]
    for name in ("_start", ""):
        typ = names.get(name)
        if isinstance(typ, wasmtime.FuncType) and not typ.params:
            return name
    return None


def _instantiate_error(exc: Exception, plan: WorkloadPlan) -> str:
    text = _first_line(exc)
    if "memory" in text and "limit" in text and plan.memory_limit is not None:
        return f"memory limit of {_size(plan.memory_limit)} is below the module's initial memory ({text})"
    if "unknown import" in text:
        return f"the module imports something this runtime does not provide: {text}"
    return f"cannot instantiate the module: {text}"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # wasmtime errors read "error while executing at wasm backtrace: ... Caused by: <reason>"
    for i, line in enumerate(lines):
        if line.startswith("Caused by"):
            return lines[i + 1] if i + 1 < len(lines) else line
    return lines[0] if lines else type(exc).__name__


def _json(payload: bytes) -> dict:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def serve(sock: socket.socket) -> None:
    """Entry point of a keep process: never returns."""
    Keep(sock).serve()
