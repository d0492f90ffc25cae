"""Relay one guest connection to its real destination (QEMU's ``guestfwd=…-cmd:``, one process per
connection): the guest's end is file descriptor 0, the destination is ``argv[1]:argv[2]``.

Standalone (standard library only) and quiet: QEMU hands the same connection as stderr, so nothing may be
printed. If the destination cannot be reached the guest sees its connection closed.
"""

import os
import socket
import sys
import threading


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side (half-close, as TCP allows)."""
    try:
        while data := source.recv(1 << 16):
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main() -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    guest = socket.socket(fileno=os.dup(0))
    try:
        upstream = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    except (OSError, ValueError, IndexError):
        return 1
    upstream.settimeout(None)
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=pump, args=(upstream, guest), daemon=True)
    back.start()
    pump(guest, upstream)
    back.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
