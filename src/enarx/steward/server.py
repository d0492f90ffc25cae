"""Run the Steward app under uvicorn: a plain listener and, with a server certificate, a TLS one."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn

from enarx.errors import EnarxError
from enarx.steward.app import create_app
from enarx.steward.service import Steward


class _JsonPassthrough(logging.Formatter):
    """Decision lines are already JSON; anything else is wrapped as ``{"level", "logger", "message"}``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "enarx.steward.decision":
            return message
        out: dict[str, Any] = {"level": record.levelname.lower(), "logger": record.name, "message": message}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonPassthrough())
    logger = logging.getLogger("enarx.steward")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


@dataclass
class Listener:
    host: str
    port: int
    tls_crt: str | None = None
    tls_key: str | None = None


class _GroupServer(uvicorn.Server):
    """A uvicorn server whose exit signal stops every server of its group (plain + TLS listeners)."""

    group: list[uvicorn.Server]

    def handle_exit(self, sig: int, frame: Any) -> None:
        for server in getattr(self, "group", [self]):
            uvicorn.Server.handle_exit(server, sig, frame)


def _server(app: Any, listener: Listener) -> uvicorn.Server:
    config = uvicorn.Config(app, host=listener.host, port=listener.port, ssl_certfile=listener.tls_crt,
                            ssl_keyfile=listener.tls_key, log_config=None, access_log=False,
                            lifespan="off", timeout_keep_alive=30, backlog=2048)
    return _GroupServer(config)


class ListenError(EnarxError):
    """A listener cannot be opened; the message names the address and what to do."""


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(listener: Listener) -> socket.socket:
    """Bind in the parent, so that ``--port 0`` picks one port that every worker then serves."""
    where = _shown(listener.host, listener.port)
    if not 0 <= listener.port <= 65535:
        raise ListenError(f"cannot listen on {where}: port {listener.port} is out of range (0-65535)")
    try:
        infos = socket.getaddrinfo(listener.host or None, listener.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"cannot listen on {where}: {listener.host!r} is not an address or a resolvable host "
                          f"name ({getattr(exc, 'strerror', None) or exc}); give --addr an IP address such as "
                          "127.0.0.1 or ::") from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and listener.host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {where}: {_advice(exc, listener)}") from None
    sock.set_inheritable(True)
    return sock


def _advice(exc: OSError, listener: Listener) -> str:
    option = "--tls-port" if listener.tls_crt else "--port"
    if exc.errno == errno.EADDRINUSE:
        return f"the port is already in use (another Steward?): stop that process or choose another {option}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's: give --addr a local address (or :: for all)"
    if exc.errno == errno.EACCES:
        return f"permission denied (ports below 1024 need privileges): choose a {option} of 1024 or more"
    return f"{exc.strerror or exc}"


def open_listeners(listeners: list[Listener]) -> list[socket.socket]:
    """Bind every listener (all or none); :class:`ListenError` names the one that failed."""
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            sockets.append(_bind(listener))
    except ListenError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def serve(steward: Steward, listeners: list[Listener], workers: int = 1,
          sockets: list[socket.socket] | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM), in ``workers`` processes sharing the listening sockets.

    Verification is CPU-bound Python, so one process uses one core; more workers use more cores. Each
    worker keeps its own Prometheus counters (``/metrics`` shows the worker that answered). ``sockets``
    are listeners already opened with :func:`open_listeners` (else they are opened here).
    """
    sockets = sockets if sockets is not None else open_listeners(listeners)
    _reload_on_hangup(steward)  # before "listening": forked workers inherit it; the parent then forwards
    for sock, listener in zip(sockets, listeners):
        host, port = sock.getsockname()[:2]
        scheme = "https" if listener.tls_crt else "http"
        shown = f"[{host}]" if ":" in host else host
        print(f"steward: listening on {scheme}://{shown}:{port}/", file=sys.stderr, flush=True)
    if workers <= 1:
        _run_worker(steward, listeners, sockets)
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_worker(steward, listeners, sockets)
            except BaseException:  # noqa: BLE001 - a worker must never fall back into the parent's code
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(sig: int, _frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)  # each worker reloads its own collateral
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue


def _reload_on_hangup(steward: Steward) -> None:
    """SIGHUP re-reads ``--collateral`` (in a thread: parsing must not stall the event loop)."""
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=steward.reload_collateral, name="reload",
                                                             daemon=True).start())


def _run_worker(steward: Steward, listeners: list[Listener], sockets: list[socket.socket]) -> None:
    app = create_app(steward)
    servers = [_server(app, lst) for lst in listeners]
    for server in servers:
        server.group = servers  # type: ignore[attr-defined]

    async def main() -> None:
        await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in zip(servers, sockets)))

    try:
        import uvloop  # a faster event loop when installed (it is a dependency; optional all the same)
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


class BackgroundServer:
    """A uvicorn server on a thread (tests, embedding); ``port`` is known once :meth:`start` returns."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, tls_crt: str | None = None,
                 tls_key: str | None = None):
        self.server = _server(app, Listener(host, port, tls_crt, tls_key))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="steward-uvicorn")

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self.thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout * 100)):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            deadline.wait(0.01)
        raise TimeoutError("uvicorn did not start")

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
