"""Supervise one keep: send the package, relay stdio in order, forward Ctrl-C/SIGTERM, report the end.

The host never hangs on a keep: a keep that closes its channel without an EXIT frame (a crash) is
reported with its exit status or signal, and a keep that ignores a stop request is killed after a grace
period.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import IO, NamedTuple

from enarx.backends.base import KeepProcess
from enarx.protocol import (
    MAX_KEEP_TO_HOST,
    Channel,
    ExitReport,
    Frame,
    FrameType,
    LaunchRequest,
    ProtocolError,
)
from enarx.protocol.frames import ATTACH_CHUNK, enlarge_pipe
from enarx.protocol.messages import PushEnd, StopRequest, json_object


def _log(name: str):  # logging is imported only when there is something to log (start-up time)
    import logging

    return logging.getLogger(name)


STOP_GRACE_SECONDS = 3.0
Sink = int | IO[bytes] | Callable[[bytes], object] | None
Source = int | IO[bytes] | bytes | None


class Stdio(NamedTuple):
    """Where the workload's stdio goes. An int is a file descriptor; ``None`` discards (or gives EOF)."""

    stdin: Source = 0
    stdout: Sink = 1
    stderr: Sink = 2


def _writer(sink: Sink) -> Callable[[bytes], None]:
    if sink is None:
        return lambda data: None
    if isinstance(sink, int):
        fd = sink

        def write_fd(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        return write_fd
    if callable(sink) and not hasattr(sink, "write"):
        return lambda data: sink(bytes(data))  # type: ignore[operator]

    def write_file(data: bytes) -> None:
        sink.write(data)  # type: ignore[union-attr]
        sink.flush()  # type: ignore[union-attr]

    return write_file


class Supervisor:
    def __init__(self, keep: KeepProcess, stdio: Stdio, *, on_started: Callable[[dict], None] | None = None,
                 push_listener=None):
        self.keep = keep
        self.stdio = stdio
        self.channel = Channel(keep.channel, max_incoming=MAX_KEEP_TO_HOST)
        self.on_started = on_started
        self.push_relay = None
        if push_listener is not None:  # `enarx run --await-push`: relay the owner's connection to the keep
            from enarx.host.push_relay import PushRelay

            self.push_relay = PushRelay(push_listener, self.channel)
        self._stop_timer: threading.Timer | None = None
        self._stdout_broken = False
        self._signalled = False

    def run(self, request: LaunchRequest, module: bytes, *, relay_stdin: bool) -> ExitReport:
        previous = self._install_signal_handlers()
        try:
            request, module, attachments = _hook(self.keep, "launch_frames")(request, module)
            try:
                self.channel.send(FrameType.LAUNCH, request.encode(module))
                for _kind, data in attachments:
                    for i in range(0, len(data), ATTACH_CHUNK):
                        self.channel.send(FrameType.ATTACH, memoryview(data)[i:i + ATTACH_CHUNK])
            except OSError:
                pass  # the keep died before reading; reported below from its exit status
            if relay_stdin:
                self._start_stdin_relay()
            if self.push_relay is not None:
                self.push_relay.start()
            return self._relay()
        finally:
            if self.push_relay is not None:
                self.push_relay.close()
            if self._stop_timer is not None:
                self._stop_timer.cancel()
            self.keep.wait()
            self.channel.close()
            self._restore_signal_handlers(previous)  # last: until the keep is gone, a signal is for it

    # -- stdio --------------------------------------------------------------------------------------
    def _start_stdin_relay(self) -> None:
        source = self.stdio.stdin

        def pump() -> None:
            try:
                if isinstance(source, bytes):
                    for i in range(0, len(source), 1 << 20):
                        self.channel.send(FrameType.STDIN, source[i:i + (1 << 20)])
                elif isinstance(source, int):
                    while data := os.read(source, 1 << 16):
                        self.channel.send(FrameType.STDIN, data)
                elif source is not None:
                    while data := source.read(1 << 16):
                        self.channel.send(FrameType.STDIN, data)
                self.channel.send(FrameType.STDIN, b"")
            except OSError:
                pass  # the keep is gone; the relay loop reports how it ended

        threading.Thread(target=pump, name="stdin-relay", daemon=True).start()

    def _relay(self) -> ExitReport:
        out = _writer(self.stdio.stdout)
        err = _writer(self.stdio.stderr)
        try:
            splice_fd = _pipe_fd(self.stdio.stdout)
            while (header := self.channel.recv_header()) is not None:
                ftype, length = header
                if ftype == FrameType.STDOUT and splice_fd is not None and not self._stdout_broken:
                    try:  # stdout is a pipe: let the kernel move the bytes
                        self.channel.splice_payload(length, splice_fd)
                        continue
                    except BrokenPipeError:
                        self._stdout_broken = True
                        self.stop("SIGPIPE")
                        splice_fd = None
                        continue  # the rest of this frame is drained below as the channel goes on
                payload = self.channel.recv_payload_view(length)
                if ftype == FrameType.STDOUT:
                    if not self._stdout_broken:
                        try:
                            out(payload)
                        except BrokenPipeError:
                            self._stdout_broken = True  # like SIGPIPE for a native program
                            self.stop("SIGPIPE")
                    continue
                if ftype == FrameType.STDERR:
                    try:
                        err(payload)
                    except BrokenPipeError:
                        pass
                    continue
                frame = Frame(ftype, bytes(payload))
                if frame.type == FrameType.LOG:
                    _log("enarx.keep").info("%s", frame.payload.decode("utf-8", "replace"))
                elif frame.type == FrameType.PUSH_REPLY and self.push_relay is not None:
                    self.push_relay.to_owner(frame.payload)
                elif frame.type == FrameType.PUSH_END and self.push_relay is not None:
                    self.push_relay.end(PushEnd.decode(frame.payload).accepted)
                elif frame.type == FrameType.STARTED:
                    if self.push_relay is not None:
                        self.push_relay.close()  # the workload runs: no more pushes
                    info = _hook(self.keep, "started")(json_object(frame.payload))
                    if self.on_started is not None:
                        self.on_started(info)
                elif frame.type == FrameType.EXIT:
                    report = ExitReport.decode(frame.payload)
                    if self._stdout_broken:
                        report = ExitReport(141, "signal", None)
                    return report
                else:
                    raise ProtocolError(f"unexpected {frame.type.name} frame from the keep")
        except ProtocolError as exc:
            self.keep.kill()
            return ExitReport(1, "error", f"keep broke the protocol: {exc}")
        except OSError as exc:
            _log("enarx.host").debug("channel error: %s", exc)
        return self._crashed()

    def _crashed(self) -> ExitReport:
        status = self.keep.wait()
        report = _hook(self.keep, "crash_report")()
        if report:
            return ExitReport(1, "crash", report)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return ExitReport(1, "crash", f"keep crashed: killed by {name}")
        code = os.waitstatus_to_exitcode(status)
        return ExitReport(1, "crash", f"keep ended without reporting an exit status (process status {code})")

    # -- signals ------------------------------------------------------------------------------------
    def stop(self, signame: str) -> None:
        """Ask the keep to stop; kill it if it has not ended after a grace period.

        The STOP frame is sent from a thread: a signal handler runs in the thread that may be blocked
        sending (a VM keep reads its LAUNCH only once booted), and must neither wait for it nor deadlock."""
        if self._stop_timer is None:
            self._stop_timer = threading.Timer(STOP_GRACE_SECONDS, self.keep.kill)
            self._stop_timer.daemon = True
            self._stop_timer.start()

        def send() -> None:
            try:
                self.channel.send(FrameType.STOP, StopRequest(signame).encode())
            except OSError:
                pass

        threading.Thread(target=send, name="stop", daemon=True).start()

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _on_signal(self, signum: int, _frame: object) -> None:
        """Forward the first Ctrl-C/SIGTERM to the keep; later ones change nothing (the grace timer runs).

        A handler runs in the main thread between any two bytecodes, possibly inside a channel send that
        holds the channel's lock (timeout(1) and `kill -- -PGID` deliver SIGTERM twice in a row): the stop
        is sent from a thread of its own, never from the handler.
        """
        if self._signalled:
            return
        self._signalled = True
        threading.Thread(target=self.stop, args=(signal.Signals(signum).name,), name="stop", daemon=True).start()

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, object]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _hook(keep: KeepProcess, name: str) -> Callable:
    """A keep's optional hook, or the default: process keeps are registered with KeepProcess, not derived
    from it (they stay free of imports), so they lack the defaults."""
    return getattr(keep, name, None) or getattr(KeepProcess, name).__get__(keep)


def _pipe_fd(sink: Sink) -> int | None:
    """The sink's fd if it is a pipe (splice(2) needs one end to be a pipe), else None."""
    if not isinstance(sink, int) or not hasattr(os, "splice"):
        return None
    import stat

    try:
        if not stat.S_ISFIFO(os.fstat(sink).st_mode):
            return None
    except OSError:
        return None
    enlarge_pipe(sink)  # also fewer wake-ups of whoever reads our stdout
    return sink

