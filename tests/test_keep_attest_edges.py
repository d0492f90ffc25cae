"""Edges of the keep's attestation client that surviving mutants showed untested (docs/mutants.md): the SNP
certificate table, TSM read errors, and what the Steward answers."""

from __future__ import annotations

import http.server
import os
import struct
import threading
from contextlib import contextmanager

import pytest

from enarx.errors import KeepError
from enarx.runtime.attest.evidence import TsmReport, snp_vcek_from_auxblob
from enarx.runtime.attest.steward import MAX_RESPONSE, _reasons, request_certificate

VCEK_GUID = "63da758d-e664-4564-adc5-f4b93be8accd"
ASK_GUID = "4ab7b379-bbac-4fe4-a02f-05aef327c782"


def _entry(guid: str, offset: int, length: int) -> bytes:
    raw = bytes.fromhex(guid.replace("-", ""))
    mixed = raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]  # as the firmware stores GUIDs
    return mixed + struct.pack("<II", offset, length)


def test_the_vcek_is_found_by_its_guid_not_its_place():
    ask, vcek = b"ASK certificate", b"VCEK certificate"
    start = 3 * 24
    table = _entry(ASK_GUID, start, len(ask)) + _entry(VCEK_GUID, start + len(ask), len(vcek)) + bytes(24)
    assert snp_vcek_from_auxblob(table + ask + vcek) == vcek


def test_entries_after_the_terminator_are_not_read():
    vcek = b"VCEK certificate"
    table = _entry(ASK_GUID, 72, 4) + bytes(24) + _entry(VCEK_GUID, 72, len(vcek))
    assert snp_vcek_from_auxblob(table + vcek) is None
    assert snp_vcek_from_auxblob(_entry(VCEK_GUID, 48, len(vcek)) + bytes(24) + vcek) == vcek  # before: read


def test_an_entry_pointing_outside_the_table_is_not_read():
    assert snp_vcek_from_auxblob(_entry(VCEK_GUID, 48, 4096) + bytes(24) + b"short") is None


def test_a_tsm_read_error_is_a_clear_keep_error(tmp_path):
    entry = tmp_path / f"enarx-{os.getpid()}"
    entry.mkdir()
    (entry / "provider").write_text("sev_guest\n")
    (entry / "generation").write_text("1\n")  # no outblob: the read fails
    with pytest.raises(KeepError, match=r"^TSM report failed: No such file or directory$"):
        TsmReport(tmp_path).get(bytes(64))


@pytest.mark.parametrize("body,reason", [
    (b'{"detail": "evidence not genuine", "failed_checks": [{"name": "snp.signature"}]}',
     "evidence not genuine — failed: snp.signature"),
    (b"{}", "refused"),
    (b'{"title": "Forbidden"}', "Forbidden"),
    (b"plain words", "plain words"),
])
def test_steward_refusal_reasons(body, reason):
    assert _reasons(body) == reason


@contextmanager
def answering(status: int, body: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_an_oversized_steward_answer_is_refused_as_such():
    with answering(200, b"\x30" * (MAX_RESPONSE + 1)) as url, pytest.raises(KeepError, match="too large"):
        request_certificate(url, b"csr")


def test_a_refusal_carries_the_stewards_reasons():
    with answering(403, b'{"detail": "measurement not allowed"}') as url, \
            pytest.raises(KeepError, match=r"steward refused the keep \(HTTP 403\): measurement not allowed"):
        request_certificate(url, b"csr")



def test_an_unreachable_steward_is_named():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"  # bound, not listening: refused
        with pytest.raises(KeepError, match=rf"^cannot reach the steward at {url}: .*[Rr]efused"):
            request_certificate(url, b"csr")


def test_keys_are_those_enarx_uses_per_tee():
    """P-384 for SEV-SNP, P-256 for TDX and for nil/KVM keeps (the Steward matches the key to the TEE)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from enarx.runtime.attest.evidence import NilEvidence, SnpGuestEvidence, TdxGuestEvidence

    assert isinstance(NilEvidence().curve(), ec.SECP256R1)
    assert isinstance(SnpGuestEvidence().curve(), ec.SECP384R1)
    assert isinstance(TdxGuestEvidence().curve(), ec.SECP256R1)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "file://localhost/etc/passwd", "gopher://[::1]/"])
def test_only_http_and_https_reach_a_steward(url):
    from enarx.runtime.attest.steward import tls_context

    with pytest.raises(KeepError, match="refusing to use the steward url"):
        tls_context(url, None)


def test_a_tsm_report_rewritten_while_read_is_refused(tmp_path, monkeypatch):
    """Another writer bumps the generation (9 → 10) between our write and our read of the report."""
    entry = tmp_path / f"enarx-{os.getpid()}"
    entry.mkdir()
    (entry / "provider").write_text("sev_guest\n")
    (entry / "generation").write_text("9\n")
    (entry / "outblob").write_bytes(b"report")
    original = type(entry).read_bytes

    def racing_read(path):
        if path.name == "outblob":
            (path.parent / "generation").write_text("10\n")
        return original(path)

    monkeypatch.setattr(type(entry), "read_bytes", racing_read)
    with pytest.raises(KeepError, match="changed while it was read"):
        TsmReport(tmp_path).get(bytes(64))


def test_a_short_report_from_the_sev_guest_device_is_refused(tmp_path):
    import ctypes

    from enarx.runtime.attest.evidence import SevGuestDevice

    def short_report(fd, request, arg, mutate):
        _version, _req, resp_addr, _exitinfo = struct.unpack("<B7xQQQ", arg)
        response = struct.pack("<II24x", 0, 100) + bytes(100)  # status 0, but 100 bytes, not 1184
        ctypes.memmove(resp_addr, response, len(response))

    device = tmp_path / "sev-guest"
    device.write_bytes(b"")
    with pytest.raises(KeepError, match=r"refused the report request \(status 0x0, size 100\)"):
        SevGuestDevice(str(device), short_report).get(bytes(64))
