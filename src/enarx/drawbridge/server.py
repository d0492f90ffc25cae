"""Run the Drawbridge app under uvicorn: TLS always, client certificates (keeps) optional.

A client certificate is requested on every connection; with ``--ca`` one that chains to it is accepted
by the TLS layer (a certificate from another CA fails the handshake) and its claims extension is handed
to the app as the ASGI ``tls`` extension of each request on that connection.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from enarx.steward.server import Listener
from enarx.steward.server import _bind as bind_listener


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


class ClientCertProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, plus the connection's client certificate in every request's scope."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        try:
            self._tls = peer_certificate(transport)
        except (ssl.SSLError, OSError):
            self._tls = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}


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
                            timeout_keep_alive=30, backlog=2048, timeout_graceful_shutdown=2)
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



