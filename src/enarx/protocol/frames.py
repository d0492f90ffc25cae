"""Framing: ``type (u8) | length (u32, big-endian) | payload``. Nothing else travels on the channel."""

from __future__ import annotations

import enum
import os
import socket
import struct
import threading
from typing import NamedTuple

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">BI")
MAX_HOST_TO_KEEP = 128 * 1024 * 1024  # a launch frame carries the module (Enarx caps wasm at 100 MB)
MAX_KEEP_TO_HOST = 16 * 1024 * 1024  # keeps send stdio in chunks far below this
MAX_ATTACHMENTS = 1 << 30  # all attachments of one LAUNCH together (sent in ATTACH chunks)
ATTACH_CHUNK = 16 * 1024 * 1024


class FrameType(enum.IntEnum):
    # host → keep
    LAUNCH = 0x01  # u32 json length | JSON LaunchRequest | module bytes
    STDIN = 0x02  # bytes for the workload's stdin; an empty payload means end of file
    STOP = 0x03  # JSON {"signal": "SIGINT"|"SIGTERM"}: stop the workload now
    ATTACH = 0x04  # a chunk of the attachments the LAUNCH announced, sent right after it (VM keeps)
    PUSH = 0x05  # bytes from the owner's push connection (--await-push); empty: that connection ended
    # keep → host
    STARTED = 0x10  # JSON {"protocol": 1, "backend": ..., "listening": [...]}: the workload is about to run
    STDOUT = 0x11  # bytes the workload wrote to stdout
    STDERR = 0x12  # bytes the workload wrote to stderr
    LOG = 0x13  # one UTF-8 log line from the keep runtime
    EXIT = 0x14  # JSON ExitReport; the last frame a keep sends
    PUSH_REPLY = 0x15  # bytes for the owner's push connection
    PUSH_END = 0x16  # JSON {"accepted": bool}: close the owner's connection; accepted: stop waiting for pushes


def enlarge_pipe(fd: int, size: int = 1 << 20) -> None:
    """Grow a pipe the channel splices to or from: fewer, larger transfers and wake-ups. Best effort (the
    kernel caps it at /proc/sys/fs/pipe-max-size; the default size still works)."""
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except OSError:
        pass


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame sequence."""


class Frame(NamedTuple):
    type: FrameType
    payload: bytes | bytearray  # received payloads are bytearrays (no extra copy); treat as read-only


class Channel:
    """A framed channel over a connected stream socket. Sends are thread-safe; receive from one thread."""

    def __init__(self, sock: socket.socket, *, max_incoming: int):
        self.sock = sock
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
        self.max_incoming = max_incoming
        #: splice(2) into the channel works for sockets; a virtio-serial port says otherwise (``splice``)
        self.can_splice = hasattr(os, "splice") and getattr(sock, "splice", True)
        self._buffer = bytearray()
        self._send_lock = threading.Lock()

    def send(self, ftype: FrameType, payload: bytes | bytearray | memoryview = b"") -> None:
        header = HEADER.pack(int(ftype), len(payload))
        with self._send_lock:
            if len(payload) < 4096:
                self.sock.sendall(header + bytes(payload))
                return
            view = memoryview(payload)
            sent = self.sock.sendmsg([header, view])
            if sent < len(header):
                self.sock.sendall(header[sent:])
                sent = len(header)
            if sent - len(header) < len(view):
                self.sock.sendall(view[sent - len(header):])

    def recv(self) -> Frame | None:
        """The next frame, or ``None`` on a clean end of stream between frames."""
        header = self.recv_header()
        if header is None:
            return None
        ftype, length = header
        payload = bytearray(length)
        self._fill(memoryview(payload))
        return Frame(ftype, payload)

    def recv_header(self) -> tuple[FrameType, int] | None:
        """The next frame's type and length, checked; then read its payload with :meth:`recv_payload_view`
        or :meth:`splice_payload`. ``None`` on a clean end of stream between frames."""
        header = bytearray(HEADER.size)
        if not self._fill(memoryview(header), eof_ok=True):
            return None
        code, length = HEADER.unpack(header)
        try:
            ftype = FrameType(code)
        except ValueError:
            raise ProtocolError(f"unknown frame type 0x{code:02x}") from None
        if length > self.max_incoming:
            raise ProtocolError(f"{ftype.name} frame of {length} bytes exceeds the limit of {self.max_incoming}")
        return ftype, length

    def recv_payload_view(self, length: int) -> memoryview:
        """The payload in a reused buffer, valid until the next call: for bulk data (stdout) this avoids
        allocating — and page-faulting in — a fresh buffer per frame."""
        if len(self._buffer) < length:
            self._buffer = bytearray(max(length, 1 << 20))
        view = memoryview(self._buffer)[:length]
        self._fill(view)
        return view

    def splice_payload(self, length: int, out_fd: int) -> None:
        """Move the payload straight from the channel into a pipe, without copying it through Python."""
        remaining = length
        while remaining:
            try:
                moved = os.splice(self.sock.fileno(), out_fd, remaining)
            except BrokenPipeError:
                self.recv_payload_view(remaining)  # keep the framing: consume the rest of this frame
                raise
            if moved == 0:
                raise ProtocolError(f"channel closed in the middle of a frame ({length - remaining} of {length})")
            remaining -= moved

    def send_from_pipe(self, ftype: FrameType, pipe_fd: int, length: int) -> None:
        """Send ``length`` bytes waiting in a pipe as one frame, spliced by the kernel (no Python copy)."""
        with self._send_lock:
            self.sock.sendall(HEADER.pack(int(ftype), length))
            remaining = length
            while remaining:
                moved = os.splice(pipe_fd, self.sock.fileno(), remaining)
                if moved == 0:
                    raise OSError("pipe closed while splicing")
                remaining -= moved

    def _fill(self, view: memoryview, *, eof_ok: bool = False) -> bool:
        """Receive exactly ``len(view)`` bytes; False on end of stream before the first byte if ``eof_ok``."""
        got = 0
        while got < len(view):
            k = self.sock.recv_into(view[got:])
            if k == 0:
                if got == 0 and eof_ok:
                    return False
                raise ProtocolError(f"channel closed in the middle of a frame ({got} of {len(view)} bytes)")
            got += k
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
