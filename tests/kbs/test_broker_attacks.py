"""Review experiments (uncommitted): attacks on push and the key broker. Each test asserts the SAFE behaviour,
so a failing test is a finding."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading

import httpx
import pytest
from _kbs import SimulatedKeep, make_broker, sealed_package
from test_push import owner_trust, run_keep

from enarx.kbs import evidence, teekey
from enarx.kbs.service import KbsRefusal
from enarx.packaging import keys, push, seal


class SwappingRelay:
    """A malicious host: relays challenge and evidence, then replaces the owner's package with its own."""

    def __init__(self, keep_port: int, own_pkg, signer):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.keep_port, self.pkg, self.signer = keep_port, own_pkg, signer
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        o, _ = self.listener.accept()
        k = socket.create_connection(("127.0.0.1", self.keep_port))
        owner, keep = push.Channel(o.recv, o.sendall), push.Channel(k.recv, k.sendall)
        challenge = owner.recv("challenge")
        keep.send(challenge)
        answer = keep.recv("evidence")
        owner.send(answer)
        offer = owner.recv("package")  # the owner's real package: dropped
        for _ in offer["blobs"]:
            owner.recv_raw()
        # everything needed for the seal is public: nonce, keep key, evidence
        nonce = base64.b64decode(challenge["nonce"])
        public = base64.b64decode(answer["hpke-pubkey"])
        doc = self.pkg.manifest
        payload = json.dumps({"content_key": base64.b64encode(self.pkg.content_key).decode(),
                              "manifest_sha256": doc.digest}).encode()
        from cryptography.hazmat.primitives.asymmetric import x25519
        sealed = push._SUITE.encrypt(payload, x25519.X25519PublicKey.from_public_bytes(public),
                                     info=push._info(nonce, public, answer["tee-evidence"]))
        keep.send({"type": "package", "manifest": self.pkg.token, "sealed-key": base64.b64encode(sealed).decode(),
                   "publisher": keys.public_jwk(self.signer).as_dict(), "blobs": [r.id for r in doc.all_blobs()]})
        try:
            for ref in doc.all_blobs():
                keep.send_blob((self.pkg.directory / ref.path).read_bytes())
            owner.send(keep.recv("done"))  # the owner is told its package arrived
        except (push.PushError, OSError) as exc:
            owner.send({"type": "error", "detail": str(exc)})
        finally:
            o.close()
            k.close()


@pytest.mark.parametrize("pinned", [True, False])
def test_host_cannot_substitute_its_own_workload_in_a_push(tmp_path, pinned):
    """Adjusted for the fix: a keep is pinned to the owner's publisher key at launch (--publisher-key, in its
    host data), so it refuses the host's package; an unpinned keep may run it, but its key confirmation
    cannot verify, so the owner is never told that its package arrived."""
    (tmp_path / "owner").mkdir()
    owner_pkg, owner_pub = sealed_package(tmp_path / "owner", "snp", "owner/app/v1")
    evil_src = tmp_path / "evil.wasm"
    evil_src.write_bytes(b"\0asm\x01\0\0\0 HOST-CHOSEN-WORKLOAD")
    keys.generate_signing_key(tmp_path / "evil.key")
    evil_key = keys.load_signing_key(tmp_path / "evil.key")
    evil = seal.seal_package(evil_src, tmp_path / "evil-pkg", sign_key=evil_key, policy='tees = ["sev-snp"]\n')
    owner_key = keys.load_public_key(owner_pub)
    keep = SimulatedKeep("snp", bound=keys.publisher_host_data(owner_key)) if pinned else SimulatedKeep("snp")
    port, result = run_keep(keep, owner_key if pinned else None)
    relay = SwappingRelay(port, evil, evil_key)
    conn = socket.create_connection(("127.0.0.1", relay.port))
    with pytest.raises(push.PushError) as refusal:
        push.push(push.Channel(conn.recv, conn.sendall), owner_pkg.directory, owner_pkg.content_key, owner_key,
                  owner_trust())
    conn.close()
    result["thread"].join(30)
    relay.thread.join(30)
    running = bytes(result.get("files", {}).get("main.wasm", b""))
    if pinned:
        assert b"HOST-CHOSEN-WORKLOAD" not in running, "a pinned keep loaded the host's workload"
        assert result["error"].reason == "signature" and "runs only packages of publisher" in str(result["error"])
    else:
        assert "confirmation does not verify" in str(refusal.value)


def test_keep_push_receive_fails_typed_on_a_non_json_sealed_key(tmp_path):
    """Anyone can seal to the keep's public key: a sealed non-JSON payload must be a typed refusal."""
    pkg, _pub = sealed_package(tmp_path, "snp", "x/y/z")
    port, result = run_keep(SimulatedKeep("snp"))
    k = socket.create_connection(("127.0.0.1", port))
    keep = push.Channel(k.recv, k.sendall)
    nonce = b"n" * 32
    keep.send({"type": "challenge", "version": push.VERSION, "nonce": base64.b64encode(nonce).decode()})
    answer = keep.recv("evidence")
    public = base64.b64decode(answer["hpke-pubkey"])
    from cryptography.hazmat.primitives.asymmetric import x25519
    sealed = push._SUITE.encrypt(b"[1]", x25519.X25519PublicKey.from_public_bytes(public),
                                 info=push._info(nonce, public, answer["tee-evidence"]))
    keep.send({"type": "package", "manifest": pkg.token, "sealed-key": base64.b64encode(sealed).decode(),
               "publisher": keys.public_jwk(keys.load_public_key(_pub)).as_dict(), "blobs": []})
    k.settimeout(5)
    try:
        reply = keep.recv("error")
    except Exception as exc:  # noqa: BLE001
        reply = exc
    k.close()
    result["thread"].join(10)
    assert isinstance(reply, dict), f"keep sent no typed error, it died: {reply!r}"


@pytest.fixture
def broker(tmp_path):
    broker, server = make_broker(tmp_path)
    broker.url = f"http://127.0.0.1:{server.port}"
    yield broker
    server.stop()


@pytest.mark.parametrize("tee", [[], {}, ["snp"]])
def test_auth_with_a_non_string_tee_is_a_4xx_problem(broker, tee):
    r = httpx.post(f"{broker.url}/kbs/v0/auth", json={"version": "0.4.0", "tee": tee, "extra-params": ""})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])


def test_deeply_nested_primary_evidence_is_a_4xx_problem(broker):
    http = httpx.Client(base_url=broker.url)
    http.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "snp", "extra-params": ""})
    depth = 900
    body = '{"runtime-data": {"nonce": "x", "tee-pubkey": {}}, "tee-evidence": ' + \
        '{"primary_evidence": ' * depth + '{}' + '}' * depth + '}'
    r = http.post("/kbs/v0/attest", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])


def test_trustee_0_4_composite_evidence_binding_is_accepted(broker):
    """A Trustee >= 0.4 client hashes {"tee-pubkey", "nonce", "additional-evidence"} into report_data and sends
    tee-evidence as {"primary_evidence": …, "additional_evidence": ""} (kbs_types CompositeEvidence)."""
    http = httpx.Client(base_url=broker.url)
    challenge = http.post("/kbs/v0/auth", json={"version": "0.4.0", "tee": "snp",
                                                 "extra-params": {"supported-hash-algorithms": ["sha384"]}}).json()
    _, public = teekey.generate()
    runtime_data = {"nonce": challenge["nonce"], "tee-pubkey": public}
    primary = {**runtime_data, "additional-evidence": ""}
    keep = SimulatedKeep("snp")
    ev = keep.evidence_for(hashlib.sha384(evidence.canonical(primary)).digest().ljust(64, b"\0"))
    r = http.post("/kbs/v0/attest", json={"runtime-data": runtime_data,
                                          "tee-evidence": {"primary_evidence": ev, "additional_evidence": ""}})
    assert r.status_code == 200, r.text[:400]


def test_unauthenticated_clients_cannot_lock_out_keeps(broker):
    for _ in range(10_000):
        broker.auth({"version": "0.1.1", "tee": "snp", "extra-params": ""})
    try:
        broker.auth({"version": "0.1.1", "tee": "snp", "extra-params": ""})
    except KbsRefusal as refusal:
        pytest.fail(f"a legitimate keep is locked out after 10,000 anonymous /auth calls: {refusal}")


def test_a_keep_launched_for_another_package_does_not_get_this_packages_key(tmp_path):
    """Bob's keep (HOST_DATA = Bob's manifest digest, same Enarx runtime measurement) asks for Alice's key."""
    from _kbs import OidcIssuer
    from test_kbs import register

    from enarx.kbs.client import KbsClient, KbsError

    issuer = OidcIssuer()
    broker, server = make_broker(tmp_path, issuer)
    broker.url = f"http://127.0.0.1:{server.port}"
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        alice, _ = sealed_package(tmp_path / "a", "snp", "alice/app/v1")
        bob, _ = sealed_package(tmp_path / "b", "snp", "bob/app/v1")
        assert register(broker, issuer, alice, sub="alice").status_code == 201
        bobs_keep = SimulatedKeep("snp", host_data=bytes.fromhex(bob.manifest.digest))
        client = KbsClient(broker.url)
        client.attest("snp", bobs_keep.evidence_for)
        try:
            key = client.resource("alice/app/v1")
        except KbsError:
            return
        assert key != alice.content_key, "Alice's key went to a keep launched for Bob's package"
    finally:
        server.stop()
        issuer.stop()
