"""The host's half of ``enarx run --await-push``: accept the owner's connection and relay it to the keep.

The host holds the listening socket (a VM keep has no network of its own) and copies bytes: the owner's
into PUSH frames, the keep's PUSH_REPLY frames back to the owner. It never interprets them — it could not
open them anyway: after the keep's evidence, everything is ciphertext for the keep's ephemeral key. One
connection at a time; the keep ends each one with PUSH_END, and once it reports ``accepted`` the host
stops listening. An owner that goes quiet for :data:`IDLE_SECONDS` is cut off, so a stalled connection
cannot keep the keep from its next one.
"""

from __future__ import annotations

import socket
import threading

from enarx.protocol import Channel, FrameType

IDLE_SECONDS = 120.0
READ_SIZE = 1 << 16


def listen(address: str) -> socket.socket:
    """A listening socket for ``ADDR:PORT`` (port 0: any free port); ``ValueError`` for a malformed address."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r}: expected ADDR:PORT (e.g. 127.0.0.1:9000, [::]:9000)")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, int(port)), family=family, backlog=4)


class PushRelay:
    def __init__(self, listener: socket.socket, channel: Channel):
        self.listener = listener
        self.channel = channel
        self._conn: socket.socket | None = None
        self._ended = threading.Event()
        self._accepted = False
        self._thread = threading.Thread(target=self._serve, name="push-relay", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()[:2]

    def start(self) -> PushRelay:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._accepted:
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                return  # closed: the keep has its package, or it ended
            self._ended.clear()
            self._conn = conn
            conn.settimeout(IDLE_SECONDS)
            try:
                while data := conn.recv(READ_SIZE):
                    self.channel.send(FrameType.PUSH, data)
            except OSError:
                pass  # the owner went away, went quiet, or the keep ended the connection
            try:
                self.channel.send(FrameType.PUSH, b"")  # this connection is over
            except OSError:
                return  # the keep is gone
            self._ended.wait()
            conn.close()
        self.close()

    # -- called from the supervisor's relay loop -------------------------------------------------------
    def to_owner(self, data: bytes | memoryview) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.sendall(data)
        except OSError:
            pass  # the owner is gone; the keep learns it from the end of its PUSH frames

    def end(self, accepted: bool) -> None:
        """The keep is done with this connection."""
        self._accepted = self._accepted or accepted
        conn = self._conn
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._ended.set()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept(); close() alone does not
        except OSError:
            pass
        self.listener.close()
        self._ended.set()
