"""The keep's channel inside a guest: a virtio-serial port (``/dev/vportNpM``), found by its name.

:class:`~enarx.protocol.Channel` expects a stream socket; a virtio-serial port is a character device with
the same byte-stream semantics (reads return 0 once the host side closes), so a thin adapter gives the
channel the few socket methods it uses.
"""

from __future__ import annotations

import os
import time

PORT_NAME = "org.enarx.keep.0"
PORTS = "/sys/class/virtio-ports"


class PortSocket:
    """Just enough of ``socket.socket`` over a character device for :class:`~enarx.protocol.Channel`."""

    #: The port's splice_write gives up (moves 0 bytes) when a pipe holds more pages than its virtqueue
    #: has free descriptors, so output is copied instead.
    splice = False

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def setsockopt(self, *_args: object) -> None:
        raise OSError("not a socket")  # the channel treats buffer sizes as best effort

    def recv_into(self, view: memoryview) -> int:
        return os.readv(self.fd, [view])

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def sendmsg(self, buffers: list) -> int:
        return os.writev(self.fd, buffers)

    def shutdown(self, _how: int) -> None:
        """A port cannot half-close; the host sees the end when the machine powers off."""

    def close(self) -> None:
        os.close(self.fd)


def open_port(name: str = PORT_NAME, timeout: float = 30.0) -> PortSocket:
    """Open the virtio-serial port called ``name`` (the device appears once its driver has probed)."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in sorted(os.listdir(PORTS)) if os.path.isdir(PORTS) else []:
            try:
                with open(os.path.join(PORTS, entry, "name")) as fh:
                    found = fh.read().strip()
            except OSError:
                continue
            if found == name:
                return PortSocket(os.open(f"/dev/{entry}", os.O_RDWR | os.O_CLOEXEC))
        if time.monotonic() > deadline:
            raise OSError(f"no virtio-serial port named {name}")
        time.sleep(0.005)
