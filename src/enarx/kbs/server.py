"""Run the broker under uvicorn with the Steward's listener conventions (``--port 0`` announces the port).

One process: sessions and redeemed nonces live in memory (attest and fetch within one session), so the
broker does not fork workers; it verifies off the event loop in Starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from enarx.kbs.app import create_app
from enarx.kbs.service import Broker
from enarx.steward.server import Listener, _bind, _server


def configure_logging(stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("enarx.kbs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def serve(broker: Broker, listeners: list[Listener]) -> None:
    sockets = [_bind(listener) for listener in listeners]
    for sock, listener in zip(sockets, listeners):
        host, port = sock.getsockname()[:2]
        scheme = "https" if listener.tls_crt else "http"
        shown = f"[{host}]" if ":" in host else host
        print(f"kbs: listening on {scheme}://{shown}:{port}/", file=sys.stderr, flush=True)
    app = create_app(broker)
    servers = [_server(app, lst) for lst in listeners]
    for server in servers:
        server.group = servers  # type: ignore[attr-defined]

    async def main() -> None:
        await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in zip(servers, sockets)))

    asyncio.run(main())
