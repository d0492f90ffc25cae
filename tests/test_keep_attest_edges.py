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
    table = _entry(ASK_GUID, 72, 4) + bytes(24) + _entry(VCEK_GUID, 96, len(vcek))
    assert snp_vcek_from_auxblob(table + vcek) is None


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
