"""The TLS baseline for ``bench_net``: a host-side TLS 1.3 echo server in its own process.

It serves with the keep's own TLS settings (``enarx.runtime.net.tls.server_context``, a fresh keep-style
identity) one connection at a time, as the C echo example in a keep does with one client; it prints
``listening on 127.0.0.1:PORT`` on stdout once it accepts.
"""

from __future__ import annotations

import socket
import ssl
import sys


def main() -> None:
    from enarx.runtime.identity import KeepIdentity
    from enarx.runtime.net.tls import server_context

    ctx = server_context(KeepIdentity.generate().self_sign())
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(f"listening on 127.0.0.1:{server.getsockname()[1]}", flush=True)
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                while data := tls.recv(65536):
                    tls.sendall(data)
        except (OSError, ssl.SSLError):
            pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
