"""What a registry says reaches the user's terminal only as plain text: a hostile server's refusal cannot carry
terminal escape sequences (retitle the window, clear the screen, fake a prompt) or bidi overrides."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _fixtures import cli, pki

HOSTILE = "tag \x1b]0;owned\x07\x1b[2J\x1b[1;31mmissing\x1b[0m\r\nError: all good\u202e\x9b31m\x00\x7f now"


class _Hostile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"type": "about:blank", "title": "x", "status": 404, "reason": "no-such-tag",
                           "detail": HOSTILE}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hostile_registry(pki):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.crt, pki.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_registrys_refusal_is_printed_without_control_characters(hostile_registry: str, pki) -> None:
    result = cli("package", "info", f"{hostile_registry}/alice/hello:0.1.0", ca=pki.ca_pem)
    assert result.returncode == 1
    err = result.stderr.decode()
    lines = err.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith(f"Error: {hostile_registry} refused ")
    assert not any(ch in err for ch in "\x1b\x07\r\x00\x7f\u202e\x9b")
    assert "missing" in err and "(404)" in err  # the server's words remain, as plain text
