"""Push without a broker: owner → host relay → keep, over real TCP on loopback. The relay records every byte
it carries; the workload's marker must never be among them."""

from __future__ import annotations

import socket
import threading

import pytest
from _kbs import OTHER_MEASUREMENT, SimulatedKeep, sealed_package, simulator_anchors, simulator_pool

from enarx.packaging import keys, push, trust
from enarx.packaging.errors import PackageError

MARKER = b"MARKER-secret-workload"


class Relay:
    """The host: accepts the owner's connection, connects to the keep, copies bytes both ways, records them."""

    def __init__(self, keep_port: int):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.keep_port = keep_port
        self.seen = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.seen += data
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:  # the other side closed first
            pass

    def _run(self) -> None:
        owner, _ = self.listener.accept()
        keep = socket.create_connection(("127.0.0.1", self.keep_port))
        pumps = [threading.Thread(target=self._pump, args=(owner, keep), daemon=True),
                 threading.Thread(target=self._pump, args=(keep, owner), daemon=True)]
        for p in pumps:
            p.start()
        for p in pumps:
            p.join(30)


def run_keep(keep: SimulatedKeep, publisher=None) -> tuple[int, dict]:
    """A keep waiting for one push; ``publisher`` is the key it is pinned to (its host data must say so)."""
    listener = socket.create_server(("127.0.0.1", 0))
    result: dict = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            received = push.receive(push.Channel(conn.recv, conn.sendall), keep.tee, keep.evidence_for, publisher)
            result["files"], result["publisher"] = received.files, received.publisher
        except PackageError as exc:
            result["error"] = exc
        finally:
            conn.close()

    result["thread"] = threading.Thread(target=serve, daemon=True)
    result["thread"].start()
    return listener.getsockname()[1], result


def owner_trust(policy: str = "") -> push.PushTrust:
    return push.PushTrust(simulator_anchors(), trust.parse_policy(policy) if policy else trust.default_policy(),
                          simulator_pool())


def pinned(tee: str, pub, measurement=None) -> tuple[SimulatedKeep, object]:
    """A keep launched with ``--publisher-key pub``: pinned to it, and its evidence says so."""
    key = keys.load_public_key(pub)
    kw = {"measurement": measurement} if measurement is not None else {}
    return SimulatedKeep(tee, bound=keys.publisher_host_data(key), **kw), key


def do_push(tmp_path, tee: str, measurement=None):
    pkg, pub = sealed_package(tmp_path, tee, f"owner/{tee}/v1")
    port, result = run_keep(*pinned(tee, pub, measurement))
    relay = Relay(port)
    owner = socket.create_connection(("127.0.0.1", relay.port))
    try:
        outcome = push.push(push.Channel(owner.recv, owner.sendall), pkg.directory, pkg.content_key,
                            keys.load_public_key(pub), owner_trust())
    finally:
        owner.close()
        result["thread"].join(30)
        relay.thread.join(30)
    return outcome, result, relay, pkg


@pytest.mark.parametrize("tee", ["snp", "tdx"])
def test_push_reaches_the_attested_keep_and_the_relay_sees_only_ciphertext(tmp_path, tee):
    outcome, result, relay, pkg = do_push(tmp_path, tee)
    assert outcome["files"] == 1 and outcome["pinned"]
    assert MARKER in result["files"]["main.wasm"]
    assert len(relay.seen) > 0 and MARKER not in relay.seen
    assert pkg.content_key not in relay.seen


@pytest.mark.parametrize("tee", ["snp", "tdx"])
def test_a_keep_with_the_wrong_measurement_gets_nothing(tmp_path, tee):
    with pytest.raises(PackageError) as exc:
        do_push(tmp_path, tee, OTHER_MEASUREMENT)
    assert exc.value.reason == "refused"
    assert "measurement" in str(exc.value) or "mrtd" in str(exc.value)


def test_a_sealed_key_does_not_open_in_another_keep(tmp_path):
    """Capture a push to one keep, replay its package message to a second keep — or to the same keep restarted,
    which is the same thing: a keep keeps nothing and makes a new key for every push — refused."""
    pkg, pub = sealed_package(tmp_path, "snp", "owner/replay/v1")
    port, result = run_keep(SimulatedKeep("snp"))
    owner = socket.create_connection(("127.0.0.1", port))
    sent: list[bytes] = []
    push.push(push.Channel(owner.recv, lambda d: (sent.append(d), owner.sendall(d))), pkg.directory,
              pkg.content_key, keys.load_public_key(pub), owner_trust())
    owner.close()
    result["thread"].join(30)
    frames = sent[1:]  # everything after the first challenge: the package offer and the blobs
    # a second keep answers a replayed challenge with a new key: the recorded seal does not open
    port2, result2 = run_keep(SimulatedKeep("snp"))
    conn = socket.create_connection(("127.0.0.1", port2))
    conn.sendall(sent[0])
    channel = push.Channel(conn.recv, conn.sendall)
    channel.recv("evidence")
    for frame in frames:
        try:
            conn.sendall(frame)
        except OSError:
            break
    conn.close()
    result2["thread"].join(30)
    assert isinstance(result2.get("error"), PackageError) and result2["error"].reason == "tampered"


def test_enarx_push_cli(tmp_path):
    """The owner's real command against a waiting keep; a refused keep is one `Error:` line."""
    from conftest import assert_one_line_error, enarx
    from enarx.attestation.simulate.snp import default_pki

    pkg, pub = sealed_package(tmp_path, "snp", "owner/cli/v1")
    keys.write_content_key(tmp_path / "content.key", pkg.content_key)
    (tmp_path / "ark.der").write_bytes(default_pki().ark)
    (tmp_path / "ask.der").write_bytes(default_pki().ask)
    common = ["--key", tmp_path / "content.key", "--publisher-key", pub, "--insecure-trust-anchor",
              tmp_path / "ark.der", "--insecure-trust-anchor", tmp_path / "ask.der", pkg.directory]
    port, result = run_keep(SimulatedKeep("snp"))
    proc = enarx("push", "--to", f"127.0.0.1:{port}", *common)
    result["thread"].join(30)
    assert proc.returncode == 0, proc.stderr
    assert b"Pushed 1 file(s) to an attested snp keep" in proc.stdout
    assert MARKER in result["files"]["main.wasm"]
    port, result = run_keep(SimulatedKeep("snp", OTHER_MEASUREMENT))
    proc = enarx("push", "--to", f"127.0.0.1:{port}", *common)
    result["thread"].join(30)
    assert_one_line_error(proc, "package's keep policy", "policy.measurement.allow")


def test_the_owner_refuses_a_keep_pinned_to_another_publisher(tmp_path):
    """The host launched the keep with its own --publisher-key: the evidence says so, the owner sends nothing."""
    pkg, pub = sealed_package(tmp_path, "tdx", "owner/other/v1")
    keys.generate_signing_key(tmp_path / "host.key")
    port, result = run_keep(*pinned("tdx", tmp_path / "host.key.pub"))
    conn = socket.create_connection(("127.0.0.1", port))
    sent = bytearray()
    with pytest.raises(PackageError) as exc:
        push.push(push.Channel(conn.recv, lambda d: (sent.extend(d), conn.sendall(d))), pkg.directory,
                  pkg.content_key, keys.load_public_key(pub), owner_trust())
    conn.close()
    result["thread"].join(30)
    assert exc.value.reason == "refused" and "launched for another publisher" in str(exc.value)
    assert MARKER not in sent and len(sent) < 200  # only the challenge left the owner


def test_frames_are_bounded_before_anything_is_allocated():
    """A frame header claiming 4 GiB is refused from its 4 bytes; blob data larger than the signed size too."""
    import struct

    def feed(*parts: bytes):
        pending = iter(parts)
        return push.Channel(lambda n: next(pending), lambda d: None)

    with pytest.raises(push.PushError, match="larger than"):
        feed(struct.pack(">I", 0xFFFFFFF0)).recv_blob(10 << 30)
    with pytest.raises(push.PushError, match="larger than 4"):
        feed(struct.pack(">I", 8), b"12345678").recv_blob(4)


@pytest.mark.parametrize("tee", ["snp", "tdx"])
@pytest.mark.parametrize("case", ["debug", "old-tcb"])
def test_a_debug_or_outdated_keep_gets_nothing_with_the_policys_reasons(tmp_path, tee, case):
    """The owner's own policy allows debug here, so each refusal comes from the package's keep policy."""
    from _kbs import package_policy
    from test_kbs import OLD_TCB

    policy = package_policy(tee, extra=OLD_TCB[tee][0] if case == "old-tcb" else "")
    pkg, pub = sealed_package(tmp_path, tee, f"owner/{tee}-{case}/v1", policy=policy)
    key = keys.load_public_key(pub)
    fields = {"debug": True} if case == "debug" else OLD_TCB[tee][1]
    keep = SimulatedKeep(tee, bound=keys.publisher_host_data(key), **fields)
    port, result = run_keep(keep, key)
    conn = socket.create_connection(("127.0.0.1", port))
    with pytest.raises(PackageError) as exc:
        push.push(push.Channel(conn.recv, conn.sendall), pkg.directory, pkg.content_key, key,
                  owner_trust("allow_debug = true\n"))
    conn.close()
    result["thread"].join(30)
    rule = {"debug": "policy.debug", "old-tcb": "policy.min_svn.snp" if tee == "snp" else "policy.min_svn.tdx_module_svn"}
    assert exc.value.reason == "refused" and "package's keep policy" in str(exc.value)
    assert rule[case] in str(exc.value) and "expected" in str(exc.value)
    assert "files" not in result  # the keep received nothing


def test_evidence_replayed_from_an_earlier_push_is_refused_by_the_owner(tmp_path):
    """The host records a genuine keep's answer to one push and replays it to the next push, hoping the owner
    seals the package to a key whose keep the host still talks to: the answer binds the old nonce, so the
    owner refuses it and sends nothing after its challenge."""
    import struct

    pkg, pub = sealed_package(tmp_path, "snp", "owner/renonce/v1")
    port, result = run_keep(SimulatedKeep("snp"))
    conn = socket.create_connection(("127.0.0.1", port))
    received = bytearray()

    def recording_recv(n: int) -> bytes:
        data = conn.recv(n)
        received.extend(data)
        return data

    push.push(push.Channel(recording_recv, conn.sendall), pkg.directory, pkg.content_key,
              keys.load_public_key(pub), owner_trust())
    conn.close()
    result["thread"].join(30)
    (size,) = struct.unpack(">I", received[:4])
    recorded_evidence = bytes(received[:4 + size])  # the keep's first frame: its evidence for the old nonce

    # the host's impostor: reads the owner's new challenge and answers with the recorded evidence
    listener = socket.create_server(("127.0.0.1", 0))
    sent = bytearray()

    def impostor() -> None:
        peer, _ = listener.accept()
        with peer:
            channel = push.Channel(peer.recv, peer.sendall)
            channel.recv("challenge")
            peer.sendall(recorded_evidence)
            while data := peer.recv(65536):
                sent.extend(data)

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    owner = socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=20)
    with pytest.raises(PackageError) as exc:
        push.push(push.Channel(owner.recv, owner.sendall), pkg.directory, pkg.content_key,
                  keys.load_public_key(pub), owner_trust())
    owner.close()
    thread.join(30)
    assert exc.value.reason == "refused" and "does not bind this push's nonce" in str(exc.value)
    assert sent == b""  # nothing followed the challenge: no sealed key, no ciphertext
