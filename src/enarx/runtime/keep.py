"""The keep's main loop: read LAUNCH, run the start-up stages and the workload, report stdio and the exit.

Threads: the main thread runs the stages and then wasm (wasmtime releases the GIL); one thread reads
control frames (STDIN, STOP); one pump per output stream. A stop request or the wall-clock limit ends the
keep from the control side: buffered output is flushed, an EXIT frame is sent, and the keep ends at once —
so a runaway loop is stopped without the per-instruction cost of epoch or fuel interruption.

How the keep *ends* is the one thing that differs between where it runs: a process keep exits (``os._exit``),
a VM guest powers its machine off, and an in-memory keep (tests) only ends its thread — see ``exit``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

from enarx.errors import KeepError
from enarx.protocol import (
    MAX_HOST_TO_KEEP,
    PROTOCOL_VERSION,
    Channel,
    ExitReport,
    FrameType,
    LaunchRequest,
    ProtocolError,
)
from enarx.protocol.messages import Started, StopRequest
from enarx.runtime.hostdata import check_one_package
from enarx.runtime.launch import STATUS_ERROR, STATUS_SIGNAL, STATUS_TIMEOUT, Launch, StageFailure


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


def _log_debug(message: str, *args: object) -> None:
    import logging

    logging.getLogger("enarx.keep").debug(message, *args)


class Keep:
    """One keep: its channel to the host, the stages it runs, and how it ends.

    ``stages`` defaults to :data:`enarx.runtime.stages.SETUP`; ``exit`` is called with the status once the
    EXIT frame is sent (it must not return to the stages); ``capture_logs`` routes the process's ``enarx``
    loggers to the host when the LAUNCH asks for logs (off for an in-memory keep that shares its process).
    """

    def __init__(self, sock: socket.socket, *, stages: Sequence[Callable[[Launch], None]] | None = None,
                 exit: Callable[[int], object] = os._exit, capture_logs: bool = True):
        self.channel = Channel(sock, max_incoming=MAX_HOST_TO_KEEP)
        self.stages = stages
        self.launch: Launch | None = None
        self._exit = exit
        self._capture_logs = capture_logs
        self._finish_lock = threading.Lock()
        self._finished = False

    # -- ending -------------------------------------------------------------------------------------
    def finish(self, report: ExitReport, *, abrupt: bool) -> None:
        """Send the one EXIT frame and end the keep. Safe to call from any thread, once."""
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
            for pump in self.launch.pumps if self.launch is not None else ():
                if pump.ident is None:
                    continue
                if abrupt:
                    pump.stop()
                pump.join(timeout=5)
            if self.launch is not None:
                self.launch.remove_staging()
            try:
                self.channel.send(FrameType.EXIT, report.encode())
                self.channel.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._exit(report.status)

    # -- control ------------------------------------------------------------------------------------
    def _control_loop(self, launch: Launch) -> None:
        try:
            while frame := self.channel.recv():
                if frame.type == FrameType.STDIN:
                    launch.stdin.queue.put(frame.payload)
                elif frame.type == FrameType.PUSH and launch.request.await_push:
                    if launch.push_inbox is not None:  # after the push stage, late owners are ignored
                        launch.push_inbox.put(bytes(frame.payload))
                elif frame.type == FrameType.STOP:
                    signal = StopRequest.decode(frame.payload).signal
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
            check_one_package(req, module_bytes)  # the host is not trusted to send a consistent request
        except (ProtocolError, OSError, KeepError) as exc:
            self.finish(ExitReport(STATUS_ERROR, "error", f"keep launch failed: {exc}"), abrupt=True)
            return
        if req.log_level and self._capture_logs:
            _log_to_channel(self.channel, req.log_level)
        launch = self.launch = Launch(req, module_bytes, self.channel)
        try:
            launch.attachments = self._receive_attachments(req.attachments)
        except (ProtocolError, OSError) as exc:
            self.finish(ExitReport(STATUS_ERROR, "error", f"keep launch failed: {exc}"), abrupt=True)
            return
        if req.await_push:
            import queue

            launch.push_inbox = queue.Queue()  # before the control loop: no PUSH frame can be missed
        launch.stdin.start()  # before the control loop: no STDIN frame can be missed
        threading.Thread(target=self._control_loop, args=(launch,), name="control", daemon=True).start()
        self.finish(self.run(launch), abrupt=False)

    def _receive_attachments(self, announced) -> dict[str, bytearray]:
        """The ATTACH frames that follow LAUNCH, split into the announced (kind, size) parts."""
        parts: dict[str, bytearray] = {}
        for kind, size in announced:
            data = parts[kind] = bytearray()
            while len(data) < size:
                frame = self.channel.recv()
                if frame is not None and frame.type == FrameType.STOP:
                    signal = StopRequest.decode(frame.payload).signal
                    self.finish(ExitReport(STATUS_SIGNAL.get(signal, 143), "signal", f"keep stopped by {signal}"),
                                abrupt=True)
                if frame is None or frame.type != FrameType.ATTACH or len(data) + len(frame.payload) > size:
                    raise ProtocolError(f"expected {size - len(data)} more bytes of the {kind} attachment")
                data += frame.payload
        return parts

    def run(self, launch: Launch) -> ExitReport:
        """Set-up stages, then STARTED, the workload, and the concluding report."""
        from enarx.runtime.stages import SETUP
        from enarx.runtime.stages.execute import conclude, run_workload

        timed = launch.request.log_level is not None
        try:
            for stage in self.stages if self.stages is not None else SETUP:
                began = time.monotonic() if timed else 0.0
                stage(launch)
                if timed:
                    _log_debug("stage %s: %.3f s", stage.__name__, time.monotonic() - began)
        except StageFailure as failure:
            return conclude(launch, failure.report)
        plan = launch.need_plan()
        if plan.timeout is not None:
            self._start_timer(plan.timeout)
        started = Started(PROTOCOL_VERSION, launch.sockets.listening if launch.sockets else [])
        self.channel.send(FrameType.STARTED, started.encode())
        return conclude(launch, run_workload(launch))


def serve(sock: socket.socket) -> None:
    """Entry point of a keep process: never returns."""
    Keep(sock).serve()

