"""Run the Drawbridge app under uvicorn: TLS always, client certificates (keeps) optional.

A client certificate is requested on every connection; with ``--ca`` one that chains to it is accepted
by the TLS layer (a certificate from another CA fails the handshake) and its claims extension is handed
to the app as the ASGI ``tls`` extension of each request on that connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from enarx.steward.server import Listener
from enarx.steward.server import _bind as bind_listener

log = logging.getLogger("enarx.drawbridge")


def peer_certificate(transport: Any) -> dict[str, Any] | None:
    """The verified client certificate of a TLS connection: its DER, serial and Steward claims (or None)."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    from cryptography import x509

    from enarx.steward.issuer import read_claims

    claims = None
    serial = ""
    try:
        cert = x509.load_der_x509_certificate(der)
        serial = f"{cert.serial_number:x}"
        claims = read_claims(cert)
        if not isinstance(claims, dict):
            claims = None
    except (KeyError, ValueError, TypeError):
        claims = None  # no (readable) claims: such a certificate grants nothing
    return {"client_cert_der": der, "claims": claims, "serial": serial}


HEADER_TIMEOUT = 10.0  # seconds from a connection (or a request's first byte) to its last header line
BODY_IDLE_TIMEOUT = 15.0  # seconds a request body may stall before the connection is dropped
MAX_CONNECTIONS = 1000  # beyond this, new requests are answered 503 at once


class ClientCertProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, plus the connection's client certificate in every request's scope, and
    deadlines for slow clients (uvicorn has none while a request is being received): the request line and
    headers must arrive within :data:`HEADER_TIMEOUT`, and a body must not stall for
    :data:`BODY_IDLE_TIMEOUT` — a client that drips bytes to hold connections open (slowloris) is dropped."""

    _tls: dict[str, Any] | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _last_data = 0.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        try:
            self._tls = peer_certificate(transport)
        except (ssl.SSLError, OSError):
            self._tls = None
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_data = self.loop.time()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(BODY_IDLE_TIMEOUT, self._check_body)

    def _arm_header_deadline(self) -> None:
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._drop, "headers")

    def _check_body(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete or self.transport.is_closing():
            return  # the body is complete (or no longer wanted)
        idle = self.loop.time() - self._last_data
        if idle >= BODY_IDLE_TIMEOUT and not self.flow.read_paused:  # paused: we are the slow side
            self._drop("body")
            return
        self._body_timer = self.loop.call_later(max(BODY_IDLE_TIMEOUT - idle, 1.0), self._check_body)

    def _drop(self, what: str) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info("dropping a connection from %s: its request %s did not arrive in time", self.client, what)
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def server_context(tls_crt: str, tls_key: str, keep_ca: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls_crt, tls_key)
    if keep_ca:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=keep_ca)
    return context


def make_server(app: Any, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, ssl_context_factory=lambda _cfg, _default: context,
                            http=ClientCertProtocol, log_config=None, access_log=False, lifespan="off",
                            timeout_keep_alive=30, backlog=2048, limit_concurrency=MAX_CONNECTIONS, timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve(app: Any, context: ssl.SSLContext, addr: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; announce the bound address on stderr (``--port 0`` picks one)."""
    sock = bind_listener(Listener(addr, port))
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"drawbridge: listening on https://{shown}:{bound}/", file=sys.stderr, flush=True)
    server = make_server(app, context, addr, bound)

    async def main() -> None:
        await server.serve(sockets=[sock])

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())



