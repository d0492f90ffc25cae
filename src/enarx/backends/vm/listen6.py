"""IPv6 for a VM keep's listeners: QEMU's user-network forwarder (``hostfwd``) binds IPv4 addresses only.

For a ``listen`` entry on ``::`` or ``::1`` the host binds the IPv6 address itself (IPv6-only: QEMU holds
the IPv4 side of the same port) and relays every connection to QEMU's IPv4 forward on the loopback. The
relay sees what QEMU's forwarder sees: the TCP stream, which for a ``tls`` listener is ciphertext (TLS ends
inside the keep). The listeners close when the keep ends.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable

from enarx.errors import BackendError

CHUNK = 64 << 10


class Ipv6Listeners:
    """The relaying listeners of one keep, bound at once (before QEMU starts) and closed by :meth:`close`."""

    def __init__(self, forwards: Iterable[tuple[str, int, str]]):
        """``forwards``: (IPv6 address, port, IPv4 address QEMU forwards from on that port)."""
        self._servers: list[socket.socket] = []
        self._closed = threading.Event()
        try:
            for ipv6, port, ipv4 in forwards:
                self._servers.append(self._bind(ipv6, port))
                target = ("127.0.0.1" if ipv4 in ("0.0.0.0", "127.0.0.1") else ipv4, port)
                threading.Thread(target=self._accept, args=(self._servers[-1], target), name="vm-listen6",
                                 daemon=True).start()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _bind(ipv6: str, port: int) -> socket.socket:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((ipv6, port))
            server.listen(128)
        except OSError as exc:
            server.close()
            raise BackendError(f"cannot listen on [{ipv6}]:{port} for the keep: {exc.strerror or exc}") from None
        return server

    def _accept(self, server: socket.socket, target: tuple[str, int]) -> None:
        while not self._closed.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(client, target), name="vm-listen6-conn",
                             daemon=True).start()

    @staticmethod
    def _relay(client: socket.socket, target: tuple[str, int]) -> None:
        try:
            upstream = socket.create_connection(target, timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), name="vm-listen6-back", daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        for server in self._servers:
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        self._servers.clear()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side (half-close, as TCP allows)."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
