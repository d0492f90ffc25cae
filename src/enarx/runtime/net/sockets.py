"""The keep's sockets: bound and connected before the workload runs, then looked up by guest fd."""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass, field

from enarx.config import ConnectFile, ListenFile
from enarx.errors import KeepError
from enarx.runtime.identity import KeepIdentity
from enarx.runtime.net import tls
from enarx.runtime.net.dispatcher import FIRST_DYNAMIC_FD
from enarx.runtime.net.tlsaccept import TlsAcceptor

CONNECT_TIMEOUT = 10.0


@dataclass
class KeepSocket:
    sock: socket.socket  # an ssl.SSLSocket for TLS streams
    name: str
    listener: bool = False
    tls_acceptor: TlsAcceptor | None = None  # TLS listeners: hands out connections with finished handshakes
    nonblocking: bool = False

    def poll_fd(self) -> int:
        """The OS fd whose readiness is this socket's (a TLS listener's: a finished handshake waits)."""
        return self.tls_acceptor.ready_fd if self.tls_acceptor is not None else self.sock.fileno()

    def close(self) -> None:
        if self.tls_acceptor is not None:
            self.tls_acceptor.close()  # its thread closes the listener
        else:
            self.sock.close()

    def no_delay(self) -> None:
        """Small writes go out at once (request/response protocols and TLS handshakes need it)."""
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def set_nonblocking(self, value: bool) -> None:
        self.nonblocking = value
        if self.tls_acceptor is None:  # a TLS listener's socket belongs to its acceptor thread
            self.sock.settimeout(0.0 if value else None)


@dataclass
class SocketTable:
    entries: dict[int, KeepSocket] = field(default_factory=dict)
    next_fd: int = FIRST_DYNAMIC_FD
    listening: list[dict] = field(default_factory=list)  # what `enarx run` reports

    def add_dynamic(self, entry: KeepSocket) -> int:
        fd = self.next_fd
        self.next_fd += 1
        self.entries[fd] = entry
        return fd

    def close_all(self) -> None:
        for entry in self.entries.values():
            try:
                entry.close()
            except OSError:
                pass
        self.entries.clear()


def open_sockets(entries: list[tuple[int, ListenFile | ConnectFile]], identity: KeepIdentity | None,
                 source: str) -> SocketTable:
    """Bind every listener and open every connection, or raise :class:`KeepError` naming the entry."""
    table = SocketTable()
    try:
        for fd, entry in entries:
            where = f"{source}: files[{fd}] ({entry.name})"
            if isinstance(entry, ListenFile):
                table.entries[fd] = _listen(entry, identity, where)
                host, port = table.entries[fd].sock.getsockname()[:2]
                table.listening.append({"name": entry.name, "fd": fd, "prot": entry.prot, "addr": host,
                                        "port": port})
            else:
                table.entries[fd] = _connect(entry, identity, where)
    except BaseException:
        table.close_all()
        raise
    return table


def _listen(entry: ListenFile, identity: KeepIdentity | None, where: str) -> KeepSocket:
    server_tls = None
    if entry.prot == "tls":
        assert identity is not None
        try:
            server_tls = tls.server_context(identity, entry.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise KeepError(f"{where}: cannot load client_ca {entry.client_ca!r}: {exc}") from None
    addr = entry.addr
    try:
        infos = socket.getaddrinfo(addr, entry.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise KeepError(f"{where}: cannot resolve listen address {addr!r}: {exc.strerror}") from None
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and addr in ("::", ""):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack where allowed
            sock.bind(sockaddr)
            sock.listen(128)
            acceptor = TlsAcceptor(sock, server_tls) if server_tls is not None else None
            return KeepSocket(sock, entry.name, listener=True, tls_acceptor=acceptor)
        except OSError as exc:
            sock.close()
            last = exc
    if last is not None and last.errno == errno.EAFNOSUPPORT and addr == "::":
        return _listen(ListenFile(entry.name, entry.prot, "0.0.0.0", entry.port, entry.client_ca), identity, where)
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise KeepError(f"{where}: cannot listen on {_hostport(addr, entry.port)}: {reason.lower()}")


def _connect(entry: ConnectFile, identity: KeepIdentity | None, where: str) -> KeepSocket:
    host = "127.0.0.1" if entry.host == "localhost" else entry.host
    target = _hostport(entry.host, entry.port)
    try:
        sock = socket.create_connection((host, entry.port), timeout=CONNECT_TIMEOUT)
    except socket.gaierror as exc:
        raise KeepError(f"{where}: cannot resolve host {entry.host!r}: {exc.strerror}") from None
    except TimeoutError:
        raise KeepError(f"{where}: connecting to {target} timed out") from None
    except OSError as exc:
        raise KeepError(f"{where}: cannot connect to {target}: {(exc.strerror or str(exc)).lower()}") from None
    if entry.prot == "tls":
        assert identity is not None
        try:
            ctx = tls.client_context(identity, entry.ca)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise KeepError(f"{where}: cannot load ca {entry.ca!r}: {exc}") from None
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock = ctx.wrap_socket(sock, server_hostname=entry.host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise KeepError(f"{where}: TLS server {target} is not trusted: {exc.verify_message}") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise KeepError(f"{where}: TLS handshake with {target} failed: {exc}") from None
    sock.settimeout(None)
    result = KeepSocket(sock, entry.name)
    result.no_delay()
    return result


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
