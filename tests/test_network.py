"""Keep networking with real peers on loopback: TCP and TLS listeners and connections, in C, Rust and Go."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ENARX, assert_one_line_error, enarx, example

SERVERS = ["c", "rust", "go"]
STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


def listen_toml(prot: str = "tcp", extra: str = "") -> str:
    return STDIO + f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "{prot}"\naddr = "127.0.0.1"\nport = 0\n' + extra


@contextmanager
def keep_server(tmp_path: Path, module: Path, toml: str):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(toml)
    proc = subprocess.Popen([*ENARX, "run", "--wasmcfgfile", str(cfg), str(module)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline().decode()
        match = re.search(r"listening on .*:(\d+)$", line.strip())
        assert match, f"no listening line: {line!r} {proc.stderr.read(2000) if proc.poll() is not None else ''}"
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.communicate(timeout=30)
        except ValueError:
            proc.wait(timeout=30)


def roundtrip(port: int, payload: bytes, *, tls: ssl.SSLContext | None = None) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    with sock:
        sock.sendall(payload)
        if tls is None:
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        data = b""
        while len(data) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def insecure_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.mark.parametrize("lang", SERVERS)
def test_echo_over_tcp(lang, tmp_path):
    with keep_server(tmp_path, example(lang, "echo_server"), listen_toml()) as (_proc, port):
        payload = b"ping\n" + bytes(range(256)) * 64
        assert roundtrip(port, payload) == payload


@pytest.mark.parametrize("lang", SERVERS)
def test_fifty_concurrent_clients_and_a_vanishing_one(lang, tmp_path):
    with keep_server(tmp_path, example(lang, "echo_server"), listen_toml()) as (proc, port):
        rude = socket.create_connection(("127.0.0.1", port))
        rude.sendall(b"half a message")
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        rude.close()  # RST mid-stream

        def client(i: int) -> bool:
            payload = f"client {i}\n".encode() * (100 + i)
            return roundtrip(port, payload) == payload

        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(client, range(50)))
        assert all(results), f"{results.count(False)} of 50 clients got wrong data"
        assert proc.poll() is None, "the keep must survive a vanished client"
        assert roundtrip(port, b"still here") == b"still here"


def test_go_server_nonblocking_with_slow_clients(tmp_path):
    """Go's netpoll: accept returns EAGAIN, poll_oneoff waits; slow clients force that path."""
    with keep_server(tmp_path, example("go", "echo_server"), listen_toml()) as (_proc, port):
        def slow(i: int) -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                time.sleep(0.3)
                sock.sendall(b"slow %d" % i)
                time.sleep(0.2)
                return sock.recv(100) == b"slow %d" % i

        with ThreadPoolExecutor(max_workers=5) as pool:
            assert all(pool.map(slow, range(5)))


@pytest.mark.parametrize("lang", SERVERS)
def test_echo_over_tls_13(lang, tmp_path):
    with keep_server(tmp_path, example(lang, "echo_server"), listen_toml("tls")) as (_proc, port):
        assert roundtrip(port, b"over tls", tls=insecure_tls()) == b"over tls"
        sock = insecure_tls().wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="x")
        assert sock.version() == "TLSv1.3"
        cert = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
        assert cert.subject.rfc4514_string() == "CN=localhost"
        sock.close()


def test_openssl_s_client_tls13_accepted_tls12_refused(tmp_path):
    with keep_server(tmp_path, example("c", "echo_server"), listen_toml("tls")) as (proc, port):
        ok = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3"],
                            input=b"Q\n", capture_output=True, timeout=30)
        assert b"New, TLSv1.3, Cipher is TLS_" in ok.stdout, ok.stdout[-500:]
        old = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2"],
                             input=b"", capture_output=True, timeout=30)
        assert old.returncode != 0 and b"alert protocol version" in old.stderr
        assert proc.poll() is None, "a failed handshake must not stop the keep"
        assert roundtrip(port, b"after", tls=insecure_tls()) == b"after"


@pytest.mark.parametrize("lang", SERVERS)
def test_curl_against_http_server_over_tls(lang, tmp_path):
    with keep_server(tmp_path, example(lang, "http_server"), listen_toml("tls")) as (_proc, port):
        out = subprocess.run(["curl", "-sk", "--tlsv1.3", f"https://127.0.0.1:{port}/some/path"],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == b"Hello from a keep! You asked for /some/path\n"


def test_host_relays_only_ciphertext(tmp_path):
    """A relay standing where the host's network stack is sees TLS records, never the plaintext."""
    marker = b"TOP-SECRET-MARKER-7f3a"
    seen = bytearray()
    with keep_server(tmp_path, example("c", "echo_server"), listen_toml("tls")) as (_proc, port):
        relay = socket.create_server(("127.0.0.1", 0))
        relay_port = relay.getsockname()[1]

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    seen.extend(data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        def serve() -> None:
            conn, _ = relay.accept()
            upstream = socket.create_connection(("127.0.0.1", port))
            threads = [threading.Thread(target=pump, args=(conn, upstream)),
                       threading.Thread(target=pump, args=(upstream, conn))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert roundtrip(relay_port, marker * 3, tls=insecure_tls()) == marker * 3
        relay.close()
    assert len(seen) > len(marker) * 3
    assert marker not in bytes(seen)


# -- the keep connecting out ----------------------------------------------------------------------------

def _ca(tmp_path: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _leaf(tmp_path: Path, ca: tuple, name: str, dns: str = "localhost") -> tuple[Path, Path]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(dns)] + ([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if dns == "localhost" else [])),
                False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def peer_server(tls: ssl.SSLContext | None = None):
    """A loopback server: reads until EOF, answers `got: <data>`, records the client certificate."""
    server = socket.create_server(("127.0.0.1", 0))
    info: dict = {}

    def serve() -> None:
        try:
            conn, _ = server.accept()
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
                info["peer_cert"] = conn.getpeercert(binary_form=True)
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
                if data.endswith(b"\n"):
                    break
            conn.sendall(b"got: " + data)
            conn.close()
        except (OSError, ssl.SSLError) as exc:
            info["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], info
    finally:
        server.close()


def connect_toml(port: int, prot: str = "tcp", extra: str = "") -> str:
    return STDIO + (f'[[files]]\nkind = "connect"\nname = "server"\nhost = "localhost"\nprot = "{prot}"\n'
                    f"port = {port}\n{extra}")


@pytest.mark.parametrize("lang", ["c", "go"])
def test_client_connects_out_over_tcp(lang, tmp_path):
    with peer_server() as (port, _info):
        cfg = tmp_path / "Enarx.toml"
        cfg.write_text(connect_toml(port))
        proc = enarx("run", "--wasmcfgfile", cfg, example(lang, "client"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"got: hello from the keep\n"


def test_client_tls_with_private_ca_and_wrong_ca(tmp_path):
    ca = _ca(tmp_path, "private-ca")
    _ca(tmp_path, "other-ca")
    cert, key = _leaf(tmp_path, ca, "server")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    with peer_server(ctx) as (port, _info):
        cfg = tmp_path / "Enarx.toml"
        cfg.write_text(connect_toml(port, "tls", f'ca = "{tmp_path}/private-ca.pem"\n'))
        proc = enarx("run", "--wasmcfgfile", cfg, example("c", "client"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"got: hello from the keep\n"
    with peer_server(ctx) as (port, _info):
        cfg.write_text(connect_toml(port, "tls", f'ca = "{tmp_path}/other-ca.pem"\n'))
        proc = enarx("run", "--wasmcfgfile", cfg, example("c", "client"))
    assert_one_line_error(proc, "not trusted")
    assert proc.stdout == b""  # the workload never ran


def test_listener_client_ca_serves_only_certified_clients(tmp_path):
    ca = _ca(tmp_path, "client-ca")
    cert, key = _leaf(tmp_path, ca, "client")
    toml = listen_toml("tls", f'client_ca = "{tmp_path}/client-ca.pem"\n')
    with keep_server(tmp_path, example("c", "echo_server"), toml) as (proc, port):
        try:
            got: bytes | None = roundtrip(port, b"no cert", tls=insecure_tls())
        except (ssl.SSLError, OSError):
            got = None  # TLS 1.3 reports the refusal on the first read (or the connection is reset)
        assert got in (None, b""), "a client without a certificate from client_ca was served"
        certified = insecure_tls()
        certified.load_cert_chain(cert, key)
        assert roundtrip(port, b"with cert", tls=certified) == b"with cert"
        assert proc.poll() is None


def test_port_in_use_stops_before_the_workload(tmp_path):
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(STDIO + f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\naddr = "127.0.0.1"\n'
                   f"port = {port}\n")
    proc = enarx("run", "--wasmcfgfile", cfg, example("c", "hello"))
    busy.close()
    assert_one_line_error(proc, "ingest", f"127.0.0.1:{port}", "address already in use")
    assert proc.stdout == b""


def test_unresolvable_host_and_refused_connection(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(STDIO + '[[files]]\nkind = "connect"\nhost = "no-such-host.invalid"\nprot = "tcp"\n')
    assert_one_line_error(enarx("run", "--wasmcfgfile", cfg, example("c", "hello")), "cannot resolve host")
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    cfg.write_text(connect_toml(port))
    assert_one_line_error(enarx("run", "--wasmcfgfile", cfg, example("c", "hello")), "connection refused")


def test_fd_names_with_sockets(tmp_path):
    with keep_server(tmp_path, example("c", "fdinfo"), listen_toml()) as (proc, _port):
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert "FD_COUNT=4" in text and "FD_NAMES=stdin:stdout:stderr:ingest" in text
    assert "fd 3: filetype 6" in text  # SOCKET_STREAM


def test_dir_after_socket_is_refused(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(listen_toml() + f'[[files]]\nkind = "dir"\npath = "{tmp_path}"\n')
    assert_one_line_error(enarx("run", "--wasmcfgfile", cfg, example("c", "hello")), "must come before")
