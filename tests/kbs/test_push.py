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


def run_keep(keep: SimulatedKeep) -> tuple[int, dict]:
    listener = socket.create_server(("127.0.0.1", 0))
    result: dict = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            result["files"] = push.receive(push.Channel(conn.recv, conn.sendall), keep.tee, keep.evidence_for)
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


def do_push(tmp_path, tee: str, keep: SimulatedKeep):
    pkg, pub = sealed_package(tmp_path, tee, f"owner/{tee}/v1")
    port, result = run_keep(keep)
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
    outcome, result, relay, pkg = do_push(tmp_path, tee, SimulatedKeep(tee))
    assert outcome["files"] == 1
    assert MARKER in result["files"]["main.wasm"]
    assert len(relay.seen) > 0 and MARKER not in relay.seen
    assert pkg.content_key not in relay.seen


@pytest.mark.parametrize("tee", ["snp", "tdx"])
def test_a_keep_with_the_wrong_measurement_gets_nothing(tmp_path, tee):
    with pytest.raises(PackageError) as exc:
        do_push(tmp_path, tee, SimulatedKeep(tee, OTHER_MEASUREMENT))
    assert exc.value.reason == "refused"
    assert "measurement" in str(exc.value) or "mrtd" in str(exc.value)


def test_a_sealed_key_does_not_open_in_another_keep(tmp_path):
    """Capture a push to one keep, replay its package message to a second keep: refused."""
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
