"""The host↔keep protocol: framing, message validation, and fuzzing of both decoders."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enarx.protocol import Channel, ExitReport, FrameType, LaunchRequest, ProtocolError


def pair(limit: int = 1 << 20) -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    return Channel(a, max_incoming=limit), Channel(b, max_incoming=limit)


def test_frames_round_trip_in_order():
    host, keep = pair()
    payloads = [b"", b"x", bytes(range(256)) * 100]
    for i, p in enumerate(payloads):
        host.send(FrameType.STDIN, p)
    for p in payloads:
        frame = keep.recv()
        assert frame.type == FrameType.STDIN and frame.payload == p
    host.close()
    assert keep.recv() is None  # clean end between frames


def test_oversized_frame_refused_before_reading_it():
    a, b = socket.socketpair()
    a.sendall(struct.pack(">BI", FrameType.STDOUT, 10_000_000))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        Channel(b, max_incoming=1 << 20).recv()


def test_unknown_frame_type_and_truncation():
    a, b = socket.socketpair()
    a.sendall(b"\x7f\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="unknown frame type"):
        Channel(b, max_incoming=100).recv()
    a, b = socket.socketpair()
    a.sendall(struct.pack(">BI", FrameType.STDOUT, 10) + b"abc")
    a.close()
    with pytest.raises(ProtocolError, match="middle of a frame"):
        Channel(b, max_incoming=100).recv()


def test_launch_request_round_trip():
    req = LaunchRequest(module_name="m.wasm", config_toml="args=[]", config_source="/x/Enarx.toml",
                        args=["a"], env=[("K", "V")], dirs=[("/h", "g", True)], memory_limit=1 << 20,
                        timeout=1.5, cache_dir="/c", log_level="debug")
    decoded, module = LaunchRequest.decode(req.encode(b"\0asm\x01\0\0\0"))
    assert bytes(module) == b"\0asm\x01\0\0\0"
    assert decoded.env == [("K", "V")] and decoded.dirs == [("/h", "g", True)]
    assert (decoded.module_name, decoded.config_toml, decoded.args, decoded.memory_limit, decoded.timeout) == (
        "m.wasm", "args=[]", ["a"], 1 << 20, 1.5)


def test_launch_request_version_mismatch():
    req = LaunchRequest(module_name="m")
    req = req._replace(protocol=99)
    with pytest.raises(ProtocolError, match="unsupported protocol version 99"):
        LaunchRequest.decode(req.encode(b""))


@pytest.mark.parametrize("header", [b"[]", b'{"protocol":1}', b'{"protocol":1,"module_name":3}',
                                    b'{"protocol":1,"module_name":"m","dirs":[["a","b","yes"]]}',
                                    b'{"protocol":1,"module_name":"m","env":[["a"]]}', b"\xff"])
def test_malformed_launch_headers(header):
    with pytest.raises(ProtocolError):
        LaunchRequest.decode(struct.pack(">I", len(header)) + header)


def test_exit_report_validation():
    assert ExitReport.decode(ExitReport(3, "exit").encode()) == ExitReport(3, "exit", None)
    for bad in (b"{}", b'{"status": 300}', b'{"status": true}', b"nope", b'{"status": 1, "kind": 5}'):
        with pytest.raises(ProtocolError):
            ExitReport.decode(bad)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_launch_decoder(data):
    try:
        LaunchRequest.decode(data)
    except ProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=100))
def test_fuzz_exit_decoder(data):
    try:
        report = ExitReport.decode(data)
    except ProtocolError:
        return
    assert 0 <= report.status <= 255


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_frame_stream(data):
    a, b = socket.socketpair()
    a.sendall(data)
    a.close()
    channel = Channel(b, max_incoming=1024)
    try:
        while channel.recv() is not None:
            pass
    except ProtocolError:
        pass
    finally:
        b.close()


def test_keep_rejects_garbage_launch_with_exit_frame():
    """A keep given a bad first frame reports it on the channel and ends, it never hangs."""
    import os

    from enarx.runtime.process import fork_keep

    keep = fork_keep(preload=False)
    host = Channel(keep.channel, max_incoming=1 << 20)
    host.send(FrameType.STDIN, b"not a launch")
    frame = host.recv()
    assert frame.type == FrameType.EXIT
    report = ExitReport.decode(frame.payload)
    assert report.status == 1 and "LAUNCH" in report.error
    assert os.waitstatus_to_exitcode(keep.wait()) == 1


def test_protocol_doc_names_every_frame_and_message_field():
    """docs/protocol.md is the specification: a frame type or message field it does not document fails."""
    import inspect
    from pathlib import Path

    from enarx.protocol import messages

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    missing = [f"frame {t.name} (0x{t.value:02x})" for t in FrameType
               if f"| 0x{t.value:02x} | {t.name} |" not in doc]
    classes = [c for _, c in inspect.getmembers(messages, inspect.isclass)
               if c.__module__ == messages.__name__ and hasattr(c, "_fields")]
    assert {c.__name__ for c in classes} >= {"LaunchRequest", "ExitReport", "Started", "StopRequest"}
    missing += [f"{c.__name__}.{field}" for c in classes for field in c._fields if f'"{field}"' not in doc]
    assert not missing, f"undocumented in docs/protocol.md: {', '.join(missing)}"
