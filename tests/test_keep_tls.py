"""The keep's TLS as an attacker and a strict peer see it: stalled handshakes, names, client certs, versions."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509

from conftest import assert_one_line_error, enarx, example
from enarx.runtime.identity import KeepIdentity
from enarx.runtime.net.tls import server_context
from enarx.runtime.net.tlsaccept import TlsAcceptor
from test_network import (
    _ca,
    _leaf,
    connect_toml,
    insecure_tls,
    keep_server,
    listen_toml,
    peer_server,
    roundtrip,
)


def client_hello() -> bytes:
    """A real TLS 1.3 ClientHello, as the first flight of an honest client would send it."""
    obj = insecure_tls().wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def still_open(sock: socket.socket) -> bool:
    """The peer has not closed or reset this connection (data it sent, e.g. a ServerHello, is fine)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def wait_closed(sock: socket.socket) -> None:
    """Read until the peer closes (EOF, or a reset when it had unread data); a timeout fails the test."""
    sock.setblocking(True)
    sock.settimeout(30)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    sock.close()


def stalled_clients(port: int) -> list[socket.socket]:
    """Three TCP connections that never speak, one half a ClientHello, one a ClientHello and no Finished."""
    hello = client_hello()
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    conns[3].sendall(hello[: len(hello) // 2])
    conns[4].sendall(hello)
    return conns


@pytest.mark.parametrize("lang", ["c", "rust", "go"])  # poll-based, blocking accept, Go netpoll
def test_idle_and_half_done_handshakes_do_not_delay_an_honest_client(lang, tmp_path):
    with keep_server(tmp_path, example(lang, "echo_server"), listen_toml("tls")) as (proc, port):
        stalled = stalled_clients(port)
        try:
            # Were the handshakes done in accept, this client would wait behind five 10 s timeouts (and its
            # own 30 s timeout would fail it); the stalled clients would be closed by the time it is served.
            assert roundtrip(port, b"honest client", tls=insecure_tls()) == b"honest client"
            assert all(still_open(s) for s in stalled), "the stalled clients must still be waiting"
            assert roundtrip(port, b"and another", tls=insecure_tls()) == b"and another"
        finally:
            for s in stalled:
                s.close()
        assert proc.poll() is None


@pytest.fixture
def acceptor_factory():
    made: list[TlsAcceptor] = []

    def make(**kwargs) -> tuple[TlsAcceptor, int]:
        listener = socket.create_server(("127.0.0.1", 0))
        acceptor = TlsAcceptor(listener, server_context(KeepIdentity.generate().self_sign()), **kwargs)
        made.append(acceptor)
        return acceptor, listener.getsockname()[1]

    yield make
    for acceptor in made:
        acceptor.close()


def echo_once(acceptor: TlsAcceptor) -> None:
    conn = acceptor.take(block=True)
    conn.setblocking(True)
    conn.sendall(conn.recv(100))
    conn.close()


def test_a_handshake_that_never_finishes_is_dropped_after_the_timeout(acceptor_factory):
    acceptor, port = acceptor_factory(timeout=0.5)
    stalled = stalled_clients(port)
    for s in stalled:
        wait_closed(s)
    server = threading.Thread(target=echo_once, args=(acceptor,))
    server.start()
    assert roundtrip(port, b"served after the timeouts", tls=insecure_tls()) == b"served after the timeouts"
    server.join()


def test_too_many_pending_handshakes_drop_the_oldest(acceptor_factory):
    acceptor, port = acceptor_factory(max_pending=2)
    first = socket.create_connection(("127.0.0.1", port), timeout=30)
    first.sendall(client_hello())
    assert first.recv(5)[:1] == b"\x16"  # its ServerHello: the acceptor holds it as pending
    others = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
    wait_closed(first)  # evicted for the newer ones
    assert all(still_open(s) for s in others)
    with pytest.raises(BlockingIOError):
        acceptor.take(block=False)  # no handshake finished: nothing to hand out
    for s in [first, *others]:
        s.close()


# -- the keep connecting out: each check below is one a test must catch when it is removed ------------

def _tls_server(cert: Path, key: Path, *, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.load_cert_chain(cert, key)
    return ctx


def _run_client(tmp_path: Path, port: int, workload: str = "client"):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(connect_toml(port, "tls", f'ca = "{tmp_path}/private-ca.pem"\n'))
    return enarx("run", "--wasmcfgfile", cfg, example("c", workload))


def test_connect_refuses_a_server_certificate_for_another_name(tmp_path):
    cert, key = _leaf(tmp_path, _ca(tmp_path, "private-ca"), "server", dns="other.example")
    with peer_server(_tls_server(cert, key)) as (port, info):
        proc = _run_client(tmp_path, port)
    assert_one_line_error(proc, "not trusted", "Hostname mismatch", "localhost")
    assert proc.stdout == b"" and "peer_cert" not in info  # the workload never ran


def test_connect_refuses_tls_12(tmp_path):
    cert, key = _leaf(tmp_path, _ca(tmp_path, "private-ca"), "server")
    with peer_server(_tls_server(cert, key, version=ssl.TLSVersion.TLSv1_2)) as (port, info):
        proc = _run_client(tmp_path, port)
    assert_one_line_error(proc, f"TLS handshake with localhost:{port} failed")
    assert proc.stdout == b""
    assert isinstance(info.get("error"), ssl.SSLError)  # the server saw the handshake fail, not a request


def test_connect_presents_the_keep_certificate_to_a_server_that_requires_one(tmp_path):
    cert, key = _leaf(tmp_path, _ca(tmp_path, "private-ca"), "server")
    # openssl s_server -Verify demands a client certificate (and prints it; it cannot know the keep's CA)
    server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", str(cert), "-key",
                               str(key), "-tls1_3", "-Verify", "1", "-naccept", "1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while not (accept := re.match(rb"ACCEPT \S+:(\d+)", line := server.stdout.readline())):
            assert line, "openssl s_server did not start"
        port = int(accept.group(1))
        proc = _run_client(tmp_path, port, "hello")  # connects (and so shakes hands) before it runs
        assert proc.returncode == 0, proc.stderr
        out, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    pem = re.search(rb"Client certificate\n(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)", out, re.DOTALL)
    assert pem, f"the server saw no client certificate: {out[-800:]!r}"
    presented = x509.load_pem_x509_certificate(pem.group(1))
    assert presented.subject.rfc4514_string() == "CN=localhost" == presented.issuer.rfc4514_string()
