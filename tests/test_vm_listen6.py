"""The host's IPv6 relay of a VM keep's listeners, without booting a VM: a real IPv4 TCP server on the loopback
stands in for QEMU's forward (``hostfwd``), real clients connect over ``::1``."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from enarx.backends.vm.listen6 import Ipv6Listeners
from enarx.backends.vm.network import free_port, ipv6_available
from enarx.errors import BackendError

pytestmark = pytest.mark.skipif(not ipv6_available(), reason="this host has no IPv6 loopback")


class Forward:
    """QEMU's IPv4 forward as a client reaches it: accepts and echoes, holding every connection it accepted."""

    def __init__(self) -> None:
        self.port = free_port("127.0.0.1", "::1")
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)
        conn.close()  # as the guest's echo server does at the client's end

    def close(self) -> None:
        self.server.close()


def client6(port: int) -> socket.socket:
    return socket.create_connection(("::1", port), timeout=10)


def relay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vm-listen6-") and t.is_alive()]


def wait_until(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_connections_end_with_the_keep_even_idle_ones():
    """A client that connected and went quiet (or half-closed) must not keep a relay, its threads and its
    sockets alive in the host after the keep has ended."""
    forward = Forward()
    listeners = Ipv6Listeners([("::1", forward.port, "127.0.0.1")])
    try:
        idle = client6(forward.port)
        idle.sendall(b"ping")
        assert idle.recv(4) == b"ping"  # relayed both ways
        assert relay_threads()
    finally:
        listeners.close()
    assert idle.recv(4) == b""  # the relay ended the client's connection
    assert wait_until(lambda: not relay_threads()), relay_threads()
    idle.close()
    forward.close()


def test_a_connection_before_the_keep_listens_is_reset_not_answered_empty():
    """Before QEMU's forward listens (or after it is gone), the client is reset: an orderly close would read as
    an empty answer from the workload."""
    port = free_port("127.0.0.1", "::1")  # nothing listens on the IPv4 side
    listeners = Ipv6Listeners([("::1", port, "127.0.0.1")])
    try:
        sock = client6(port)
        with pytest.raises(ConnectionResetError):
            sock.recv(1) or sock.recv(1)
        sock.close()
    finally:
        listeners.close()


def test_a_taken_ipv6_port_is_one_line():
    port = free_port("127.0.0.1", "::1")
    taken = socket.socket(socket.AF_INET6)
    taken.bind(("::1", port))
    taken.listen()
    try:
        with pytest.raises(BackendError, match=rf"^cannot listen on \[::1\]:{port} for the keep: Address already in use"):
            Ipv6Listeners([("::1", port, "127.0.0.1")])
    finally:
        taken.close()
