"""Stdio between wasmtime and the channel.

wasmtime writes the workload's stdout/stderr into pipes (``/dev/fd/N``); a pump thread per stream reads
large chunks and sends them as frames, so stdio costs a few syscalls per 1 MiB, not a Python call per write.
Stdin frames from the host are written into a pipe that wasmtime reads.
"""

from __future__ import annotations

import fcntl
import os
import queue
import select
import struct
import termios
import threading
import time

from enarx.protocol import Channel, FrameType
from enarx.protocol.frames import enlarge_pipe

CHUNK = 1 << 20
BATCH = 256 << 10  # below this much waiting output, linger BATCH_WAIT for more
BATCH_WAIT = 0.0002


def _bytes_waiting(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def make_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    enlarge_pipe(w, CHUNK)
    return r, w


class OutputPump(threading.Thread):
    """Copies one pipe to the channel as frames of ``ftype`` until the pipe's writers are all closed.

    ``stop()`` makes it send what is buffered now and end without waiting for the writers (used when
    the keep is stopped while the workload still runs); bytes are never reordered or duplicated.
    """

    def __init__(self, read_fd: int, channel: Channel, ftype: FrameType):
        super().__init__(name=f"pump-{ftype.name.lower()}", daemon=True)
        self.read_fd = read_fd
        self.channel = channel
        self.ftype = ftype
        self._wake_r, self._wake_w = os.pipe()

    def run(self) -> None:
        os.set_blocking(self.read_fd, False)
        poller = select.poll()
        poller.register(self.read_fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        stopping = False
        splice = self.channel.can_splice
        buffer = bytearray(CHUNK)  # reused when splice(2) is unavailable: no allocation per chunk
        view = memoryview(buffer)
        try:
            while True:
                events = dict(poller.poll(0 if stopping else None))
                if self._wake_r in events:
                    stopping = True
                waiting = _bytes_waiting(self.read_fd)
                if 0 < waiting < BATCH and not stopping:
                    # A fast writer: wait a moment so that one frame carries many of its writes (far
                    # fewer wake-ups of the keep, the host and the reader); 0.2 ms is not noticeable.
                    time.sleep(BATCH_WAIT)
                    waiting = _bytes_waiting(self.read_fd)
                if waiting:
                    if splice:  # the kernel moves the bytes from the pipe into the channel
                        self.channel.send_from_pipe(self.ftype, self.read_fd, min(waiting, CHUNK))
                    else:
                        n = os.readv(self.read_fd, [view[:min(waiting, CHUNK)]])
                        self.channel.send(self.ftype, view[:n])
                    continue
                if stopping or events.get(self.read_fd, 0) & (select.POLLHUP | select.POLLERR):
                    return  # drained, and every writer is gone (or we were told to stop)
        except OSError:
            return  # the host is gone

    def stop(self) -> None:
        os.write(self._wake_w, b"x")


class StdinFeeder(threading.Thread):
    """Writes STDIN frame payloads into the pipe wasmtime reads; an empty payload closes it (EOF).

    It exists from the keep's first frame, before the workload's stdin is decided: payloads queue until a
    stage either attaches the pipe (:meth:`attach`) or discards them (:meth:`discard`; the workload has no stdin).
    A bounded queue decouples the channel reader from a workload that does not read its stdin, so control
    frames (STOP) are never stuck behind stdin data.
    """

    def __init__(self) -> None:
        super().__init__(name="stdin-feeder", daemon=True)
        self.write_fd: int | None = None
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize=64)
        self._decided = threading.Event()

    def attach(self, write_fd: int) -> None:
        self.write_fd = write_fd
        self._decided.set()

    def discard(self) -> None:
        self._decided.set()

    def run(self) -> None:
        self._decided.wait()
        if self.write_fd is None:
            while True:
                self.queue.get()
        try:
            while data := self.queue.get():
                view = memoryview(data)
                while view:
                    n = os.write(self.write_fd, view)
                    view = view[n:]
        except OSError:
            pass  # the workload exited or closed stdin
        finally:
            os.close(self.write_fd)
