"""Push: the owner sends an encrypted package straight to an attested keep, no broker in between.

Over any byte stream the host relays (it sees only what is below), in frames of ``u32 length ‖ JSON``
(blob data as ``u32 length ‖ raw bytes``, at most 1 MiB each):

1. owner → keep  ``{"type": "challenge", "version": 2, "nonce": <32 random bytes, b64>}``
2. keep → owner  ``{"type": "evidence", "tee": "snp"|"tdx", "hpke-pubkey": <X25519, b64>,
   "publisher": <thumbprint the keep is pinned to, or null>, "tee-evidence": <the key broker's per-TEE
   shape>}`` — report_data = SHA-384(canonical ``{"nonce", "hpke-pubkey"}``) ‖ zeros, the broker's
   runtime-data binding. A keep started with ``--publisher-key`` has that key's RFC 7638 thumbprint
   (SHA-256) in its launch-time host data — SEV-SNP HOST_DATA, TDX MRCONFIGID (‖ 16 zero bytes) — so the
   evidence itself says which publisher's packages it will run (zeros: any).
3. the owner verifies the evidence itself (its ``--policy`` and the package's keep policy), the binding,
   and that the keep is pinned to the owner's publisher key (or to none); then sends
   ``{"type": "package", "manifest": <manifest.jws>, "publisher": <public JWK>, "sealed-key": <HPKE>,
   "blobs": [ids]}`` followed by every ciphertext file (the index first, then the manifest's order) as
   raw frames. ``sealed-key`` is HPKE (RFC 9180; DHKEM(X25519), HKDF-SHA256, AES-256-GCM) of
   ``{"content_key", "manifest_sha256"}`` to the keep's key with ``info = "enarx-push/v2" ‖ T``,
   ``T = SHA-256(nonce ‖ hpke-pubkey ‖ canonical evidence JSON)``, so it opens only in the keep that
   produced that evidence for that nonce.
4. the keep verifies the manifest's signature (against its pinned key; an unpinned keep against the
   offered one), that the sealed key names that manifest, sizes against the signed manifest, then
   receives and opens everything in memory, and answers ``{"type": "done", "files": N, "publisher":
   <thumbprint>, "confirm": HMAC-SHA256(HKDF(content key, "enarx-push/v2 done"), T ‖ manifest digest)}``
   — a key confirmation only a keep holding this package's key could compute, which the owner checks —
   or ``{"type": "error", "reason", "detail"}``.

HPKE base mode lets anyone seal to a keep's key, so the seal alone proves nothing about the sender: the
pinned publisher key is what stops a host from pushing its own package into a keep the owner attested,
and the confirmation is what tells the owner its own package arrived. The keep's private key lives only
in the keep process and only for this one exchange.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.model import CollateralSet
from enarx.attestation.policy import Policy
from enarx.kbs import evidence as kbs_evidence
from enarx.packaging import keys, manifest, trust, unseal
from enarx.packaging.errors import PackageError

VERSION = 2
MAX_JSON = 4 << 20
DATA_FRAME = 1 << 20  # blob data travels in frames of at most this size …
MAX_DATA_FRAME = 4 << 20  # … and a keep refuses larger ones
MAX_PACKAGE = 2 << 30  # ciphertext bytes a keep accepts in one push (it holds them in memory)
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = b"enarx-push/v2"
_CONFIRM_INFO = b"enarx-push/v2 done"


class PushError(PackageError):
    def __init__(self, message: str, reason: str = "push"):
        super().__init__(message, reason)


# -- framing ---------------------------------------------------------------------------------------------


class Channel:
    """Frames over ``recv(n)`` / ``sendall(data)`` callables (a socket, the keep's relay, or a test pipe)."""

    def __init__(self, recv: Callable[[int], bytes], send: Callable[[bytes], Any]):
        self._recv, self._send = recv, send

    def _exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            chunk = self._recv(min(n - got, 1 << 20))
            if not chunk:
                raise PushError("the connection closed in the middle of the push")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def send_raw(self, data: bytes | memoryview) -> None:
        self._send(struct.pack(">I", len(data)) + bytes(data))

    def recv_raw(self, limit: int = MAX_DATA_FRAME) -> bytes:
        (size,) = struct.unpack(">I", self._exact(4))
        if size > limit:
            raise PushError(f"a push frame of {size} bytes is larger than {limit}")
        return self._exact(size)

    def send(self, doc: dict[str, Any]) -> None:
        self.send_raw(json.dumps(doc, separators=(",", ":")).encode())

    def recv(self, expected: str) -> dict[str, Any]:
        try:
            doc = json.loads(self.recv_raw(MAX_JSON))
        except (ValueError, RecursionError):
            raise PushError("the peer sent a push message that is not JSON") from None
        if not isinstance(doc, dict):
            raise PushError("the peer sent a push message that is not a JSON object")
        if doc.get("type") == "error" and expected != "error":
            raise PushError(f"the keep refused the push: {str(doc.get('detail'))[:500]}", "refused")
        if doc.get("type") != expected:
            raise PushError(f"expected a {expected!r} push message, got {str(doc.get('type'))[:40]!r}")
        return doc

    def send_blob(self, data: bytes) -> None:
        view = memoryview(data)
        for i in range(0, len(view), DATA_FRAME):
            self.send_raw(view[i:i + DATA_FRAME])

    def recv_blob(self, size: int) -> bytearray:
        """Exactly ``size`` bytes, sent as data frames of at most :data:`MAX_DATA_FRAME` bytes."""
        out = bytearray()
        while len(out) < size:
            frame = self.recv_raw(min(MAX_DATA_FRAME, size - len(out)))
            if not frame:
                raise PushError("an empty data frame in the middle of a file")
            out += frame
        return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise PushError(f"{what} must be base64")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise PushError(f"{what} is not base64") from None


def _transcript(nonce: bytes, public: bytes, tee_evidence: Any) -> bytes:
    try:
        return hashlib.sha256(nonce + public + kbs_evidence.canonical(tee_evidence)).digest()
    except kbs_evidence.EvidenceError as exc:
        raise PushError(f"the keep's evidence is malformed: {exc}") from None


def _info(nonce: bytes, public: bytes, tee_evidence: Any) -> bytes:
    return _INFO + _transcript(nonce, public, tee_evidence)


def confirmation(content_key: bytes, transcript: bytes, manifest_digest: str) -> bytes:
    """The key confirmation in ``done``: only a holder of the content key can compute it."""
    key = HKDF(hashes.SHA256(), 32, None, _CONFIRM_INFO).derive(content_key)
    return hmac.new(key, transcript + bytes.fromhex(manifest_digest), hashlib.sha256).digest()


def runtime_data(nonce: bytes, public: bytes) -> dict[str, str]:
    return {"nonce": _b64(nonce), "hpke-pubkey": _b64(public)}


# -- the keep's side -------------------------------------------------------------------------------------


@dataclass
class Received:
    """What a keep received: the verified manifest, who signed it, and the package's files (in memory)."""

    manifest: manifest.Manifest
    publisher: str  # the signer's RFC 7638 thumbprint
    files: dict[str, bytearray]


def receive(channel: Channel, tee: str, evidence_for: Callable[[bytes], dict[str, Any]],
            publisher: keys.PublisherKey | None = None) -> Received:
    """Answer one push inside the keep: attest, receive, verify, open. ``publisher`` is the key the keep was
    launched with (bound into its host data), or ``None`` for a keep that accepts any publisher."""
    try:
        received, transcript, content_key = _receive(channel, tee, evidence_for, publisher)
    except PackageError as exc:
        channel.send({"type": "error", "reason": exc.reason, "detail": str(exc)})
        raise
    confirm = confirmation(content_key, transcript, received.manifest.digest)
    channel.send({"type": "done", "files": len(received.files), "publisher": received.publisher,
                  "confirm": _b64(confirm)})
    return received


def _receive(channel: Channel, tee: str, evidence_for: Callable[[bytes], dict[str, Any]],
             pinned: keys.PublisherKey | None) -> tuple[Received, bytes, bytes]:
    challenge = channel.recv("challenge")
    nonce = _unb64(challenge.get("nonce"), "nonce")
    if challenge.get("version") != VERSION or len(nonce) != 32:
        raise PushError(f"unsupported push challenge (version {VERSION} with a 32-byte nonce expected; "
                        "is the owner's enarx the same version?)")
    private = x25519.X25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    tee_evidence = evidence_for(kbs_evidence.report_data_for(runtime_data(nonce, public)))
    channel.send({"type": "evidence", "tee": tee, "hpke-pubkey": _b64(public), "tee-evidence": tee_evidence,
                  "publisher": keys.thumbprint(pinned) if pinned is not None else None})
    transcript = _transcript(nonce, public, tee_evidence)
    offer = channel.recv("package")
    signer = _offered_publisher(offer.get("publisher"), pinned)
    token = offer.get("manifest")
    doc = manifest.verify(token if isinstance(token, str) else "", signer)
    try:
        sealed = _SUITE.decrypt(_unb64(offer.get("sealed-key"), "sealed-key"), private, info=_INFO + transcript)
    except PushError:
        raise
    except Exception:  # noqa: BLE001 - cryptography raises InvalidTag or ValueError for a bad seal
        raise PushError("the sealed key does not open in this keep (sealed for another keep or nonce)",
                        "tampered") from None
    content_key = _sealed_key(sealed, doc)
    expected = [ref.id for ref in doc.all_blobs()]
    if offer.get("blobs") != expected:
        raise PushError("the push does not carry exactly the manifest's files, in its order", "tampered")
    total = sum(ref.size for ref in doc.all_blobs())
    if total > MAX_PACKAGE:
        raise PushError(f"the package is {total} bytes of ciphertext, more than a keep accepts in one push "
                        f"({MAX_PACKAGE})", "format")
    blobs = {ref.path: bytes(channel.recv_blob(ref.size)) for ref in doc.all_blobs()}
    files = unseal.open_package(unseal.MemorySource(blobs), doc, content_key)
    return Received(doc, keys.thumbprint(signer), files), transcript, content_key


def _offered_publisher(jwk: Any, pinned: keys.PublisherKey | None) -> keys.PublisherKey:
    try:
        offered = keys.public_key_from_jwk(jwk)
    except PackageError as exc:
        raise PushError(f"the push names its publisher key wrongly: {exc}", "format") from None
    if pinned is None:
        return offered
    if not hmac.compare_digest(keys.thumbprint(offered), keys.thumbprint(pinned)):
        raise PushError(f"this keep runs only packages of publisher {keys.thumbprint(pinned)}; the pushed "
                        f"package names publisher {keys.thumbprint(offered)}", "signature")
    return pinned


def _sealed_key(sealed: bytes, doc: manifest.Manifest) -> bytes:
    try:
        payload = json.loads(sealed)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("manifest_sha256"), str):
        raise PushError("the sealed key is not {content_key, manifest_sha256}", "format")
    if not hmac.compare_digest(payload["manifest_sha256"].encode(), doc.digest.encode()):
        raise PushError("the sealed key belongs to another manifest", "tampered")
    content_key = _unb64(payload.get("content_key"), "content_key")
    keys.check_key(content_key, doc.package_id_bytes, doc.key_id)
    return content_key


# -- the owner's side ------------------------------------------------------------------------------------


@dataclass
class PushTrust:
    """What the owner trusts: anchors, its own policy, and collateral it holds."""

    anchors: TrustAnchors
    policy: Policy
    collateral: CollateralSet


def push(channel: Channel, package_dir: str | os.PathLike[str], content_key: bytes, publisher: keys.PublisherKey,
         trust_: PushTrust, at=None) -> dict[str, Any]:
    """Verify the keep's evidence, then send it the package sealed to its key. Returns the keep's claims."""
    source = unseal.DirectorySource(package_dir)
    token = source.manifest_token().decode("ascii", "replace").strip()
    doc = manifest.verify(token, publisher)
    unseal.read_index(source, doc, content_key)  # the key is this package's key before anything is sent
    nonce = os.urandom(32)
    channel.send({"type": "challenge", "version": VERSION, "nonce": _b64(nonce)})
    answer = channel.recv("evidence")
    public = _unb64(answer.get("hpke-pubkey"), "hpke-pubkey")
    try:
        tee = kbs_evidence.tee_of(answer.get("tee"))
        parsed = kbs_evidence.parse_tee_evidence(tee, answer.get("tee-evidence"))
        keep_key = x25519.X25519PublicKey.from_public_bytes(public)
    except (kbs_evidence.EvidenceError, ValueError) as exc:
        raise PushError(f"the keep's evidence is malformed: {exc}") from None
    verdict = trust.verify(trust.make_verifier(trust_.anchors, trust_.policy, trust_.collateral), parsed.evidence,
                           parsed.collateral, fmt=kbs_evidence.FORMATS[tee], at=at)
    if verdict.status != "trusted" or verdict.claims is None:
        failed = [c for c in verdict.checks if not c.passed]
        raise PushError(f"the keep's {answer['tee']} evidence is {verdict.status} ({verdict.reason}): "
                        f"{trust.describe_failures(failed) or verdict.reason}", "refused")
    claims = verdict.claims
    expected = kbs_evidence.report_data_for(runtime_data(nonce, public))
    if not hmac.compare_digest(claims.report_data.ljust(64, b"\x00")[:64], expected):
        raise PushError("the keep's evidence does not bind this push's nonce and the keep's key", "refused")
    _check_pinning(trust.host_bound_digest(claims), publisher)
    package_checks = trust.parse_keep_policy(doc.policy, "the package's keep policy").appraise(claims, at)
    if any(not c.passed for c in package_checks):
        raise PushError(f"the keep does not satisfy the package's keep policy: "
                        f"{trust.describe_failures(package_checks)}", "refused")
    transcript = _transcript(nonce, public, answer["tee-evidence"])
    payload = json.dumps({"content_key": _b64(content_key), "manifest_sha256": doc.digest}).encode()
    sealed = _SUITE.encrypt(payload, keep_key, info=_INFO + transcript)
    channel.send({"type": "package", "manifest": token, "publisher": keys.public_jwk(publisher).as_dict(),
                  "sealed-key": _b64(sealed), "blobs": [ref.id for ref in doc.all_blobs()]})
    for ref in doc.all_blobs():
        channel.send_blob(source.reader(ref)(ref.size + 1))
    done = channel.recv("done")
    confirm = _unb64(done.get("confirm"), "the keep's confirmation")
    if not hmac.compare_digest(confirm, confirmation(content_key, transcript, doc.digest)):
        raise PushError("the keep's confirmation does not verify: it did not open this package (a host may have "
                        "replaced it)", "refused")
    return {"tee": answer["tee"], "files": done.get("files"), "claims": trust.claims_to_json(claims),
            "pinned": trust.host_bound_digest(claims) is not None}


def _check_pinning(bound: str | None, publisher: keys.PublisherKey) -> None:
    """The keep's launch-time host data must name the owner's publisher key, or nothing."""
    if bound is None:
        return
    mine = keys.publisher_host_data(publisher).hex()
    if not hmac.compare_digest(bound, mine):
        raise PushError(f"the keep was launched for another publisher (host data {bound}, your key's "
                        f"thumbprint is {mine}): it would not run your package", "refused")
