"""IPv6 for a VM keep's listeners: QEMU's user-network forwarder (``hostfwd``) binds IPv4 addresses only.

For a ``listen`` entry on ``::`` or ``::1`` the host binds the IPv6 address itself (IPv6-only: QEMU holds
the IPv4 side of the same port) and relays every connection to QEMU's IPv4 forward on the loopback. The
relay sees what QEMU's forwarder sees: the TCP stream, which for a ``tls`` listener is ciphertext (TLS ends
inside the keep). The listeners, and every connection they relay, close when the keep ends. At most
:data:`MAX_CONNECTIONS` are relayed at once (each holds two threads and two sockets in the host); a client
beyond them, or one that comes while QEMU's forward does not answer, is reset.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterable

from enarx.backends.vm.relay import pump  # the guestfwd relay's copy loop: half-closes as TCP allows
from enarx.errors import BackendError

MAX_CONNECTIONS = 512  # per keep, as QEMU's forwarder has no limit of its own


class Ipv6Listeners:
    """The relaying listeners of one keep, bound at once (before QEMU starts) and closed by :meth:`close`."""

    def __init__(self, forwards: Iterable[tuple[str, int, str]]):
        """``forwards``: (IPv6 address, port, IPv4 address QEMU forwards from on that port)."""
        self._servers: list[socket.socket] = []
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._clients: dict[socket.socket, list[socket.socket]] = {}  # each client: its sockets, shut at close
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
            if not self._track(client, client, first=True):
                _reset(client)
                continue
            try:
                threading.Thread(target=self._relay, args=(client, target), name="vm-listen6-conn",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: this client is refused, the listener goes on
                self._untrack(client)
                _reset(client)

    def _track(self, client: socket.socket, sock: socket.socket, *, first: bool = False) -> bool:
        """Note ``sock`` as part of ``client``'s relay; False when the keep has ended or (for a new client)
        the relay is full."""
        with self._lock:
            if self._closed.is_set() or (first and len(self._clients) >= MAX_CONNECTIONS):
                return False
            self._clients.setdefault(client, []).append(sock)
            return True

    def _untrack(self, client: socket.socket) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def _relay(self, client: socket.socket, target: tuple[str, int]) -> None:
        try:
            try:
                upstream = socket.create_connection(target, timeout=30)
            except OSError:
                _reset(client)
                return
            if not self._track(client, upstream):
                upstream.close()
                _reset(client)
                return
            upstream.settimeout(None)
            back = threading.Thread(target=pump, args=(upstream, client), name="vm-listen6-back", daemon=True)
            back.start()
            pump(client, upstream)
            back.join()
            client.close()
            upstream.close()
        finally:
            self._untrack(client)

    def close(self) -> None:
        """Stop listening and end every relayed connection (a client's idle or half-closed connection too)."""
        with self._lock:
            self._closed.set()
            live = [sock for socks in self._clients.values() for sock in socks]
        for server in self._servers:
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        self._servers.clear()
        for sock in live:  # their threads wake, finish and close them
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _reset(client: socket.socket) -> None:
    """Close with a reset, so that the client does not take the close for an empty answer."""
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    client.close()
