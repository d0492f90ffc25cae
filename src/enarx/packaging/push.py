"""Push: the owner sends an encrypted package straight to an attested keep, no broker in between.

Over any byte stream the host relays (it sees only what is below), in frames of ``u32 length ‖ JSON``
(blobs as ``u32 length ‖ raw bytes``):

1. owner → keep  ``{"type": "challenge", "version": 1, "nonce": <32 random bytes, b64>}``
2. keep → owner  ``{"type": "evidence", "tee": "snp"|"tdx", "hpke-pubkey": <X25519, b64>,
   "tee-evidence": <the key broker's per-TEE shape>}`` — report_data = SHA-384(canonical
   ``{"nonce", "hpke-pubkey"}``) ‖ zeros, the same binding as the broker's runtime-data
3. the owner verifies the evidence itself (its ``--policy`` and the package's own keep policy), checks
   the binding, then sends ``{"type": "package", "manifest": <manifest.jws>, "sealed-key": <HPKE>,
   "blobs": [ids]}`` followed by each ciphertext blob as a raw frame. ``sealed-key`` is
   HPKE (RFC 9180; DHKEM(X25519), HKDF-SHA256, AES-256-GCM) of ``{"content_key", "manifest_sha256"}``
   to the keep's key with ``info = "enarx-push/v1" ‖ SHA-256(nonce ‖ hpke-pubkey ‖ evidence JSON)``, so
   the key opens only in the keep that produced that evidence for that nonce, and only for that manifest.
4. keep → owner ``{"type": "done", "files": N}`` or ``{"type": "error", "detail": …}``.

The keep's private key lives only in the keep process and only for this one exchange.
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

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.model import CollateralSet
from enarx.attestation.policy import Policy
from enarx.kbs import evidence as kbs_evidence
from enarx.packaging import manifest, trust, unseal
from enarx.packaging.errors import PackageError

VERSION = 1
MAX_FRAME = 64 << 20
MAX_JSON = 4 << 20
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = b"enarx-push/v1"


class PushError(PackageError):
    def __init__(self, message: str, reason: str = "push"):
        super().__init__(message, reason)


# -- framing ---------------------------------------------------------------------------------------------


class Channel:
    """Frames over ``recv(n)`` / ``sendall(data)`` callables (a socket, or a test pipe)."""

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

    def send_raw(self, data: bytes) -> None:
        self._send(struct.pack(">I", len(data)) + data)

    def recv_raw(self, limit: int = MAX_FRAME) -> bytes:
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
        if doc.get("type") == "error":
            raise PushError(f"the keep refused the push: {str(doc.get('detail'))[:500]}", "refused")
        if doc.get("type") != expected:
            raise PushError(f"expected a {expected!r} push message, got {str(doc.get('type'))[:40]!r}")
        return doc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise PushError(f"{what} must be base64")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise PushError(f"{what} is not base64") from None


def _info(nonce: bytes, public: bytes, tee_evidence: Any) -> bytes:
    transcript = hashlib.sha256(nonce + public + kbs_evidence.canonical(tee_evidence)).digest()
    return _INFO + transcript


def runtime_data(nonce: bytes, public: bytes) -> dict[str, str]:
    return {"nonce": _b64(nonce), "hpke-pubkey": _b64(public)}


# -- the keep's side -------------------------------------------------------------------------------------


def receive(channel: Channel, tee: str, evidence_for: Callable[[bytes], dict[str, Any]]) -> dict[str, bytearray]:
    """Answer a push inside the keep: attest, receive, open. Returns the package's files (in memory)."""
    try:
        challenge = channel.recv("challenge")
        nonce = _unb64(challenge.get("nonce"), "nonce")
        if challenge.get("version") != VERSION or len(nonce) != 32:
            raise PushError("unsupported push challenge (version 1 with a 32-byte nonce expected)")
        private = x25519.X25519PrivateKey.generate()
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        tee_evidence = evidence_for(kbs_evidence.report_data_for(runtime_data(nonce, public)))
        channel.send({"type": "evidence", "tee": tee, "hpke-pubkey": _b64(public), "tee-evidence": tee_evidence})
        offer = channel.recv("package")
        token = offer.get("manifest")
        doc = manifest.parse_unverified(token if isinstance(token, str) else "")
        try:
            sealed = _SUITE.decrypt(_unb64(offer.get("sealed-key"), "sealed-key"), private,
                                    info=_info(nonce, public, tee_evidence))
        except Exception:  # noqa: BLE001 - cryptography raises InvalidTag or ValueError for a bad seal
            raise PushError("the sealed key does not open in this keep (sealed for another keep or nonce)",
                            "tampered") from None
        payload = json.loads(sealed)
        if not hmac.compare_digest(str(payload.get("manifest_sha256")), doc.digest):
            raise PushError("the sealed key belongs to another manifest", "tampered")
        content_key = _unb64(payload.get("content_key"), "content_key")
        ids = offer.get("blobs")
        expected = sorted(ref.id for ref in doc.all_blobs())
        if not isinstance(ids, list) or sorted(map(str, ids)) != expected:
            raise PushError("the push does not carry exactly the manifest's files", "tampered")
        blobs = {f"blobs/{blob_id}.enc": channel.recv_raw(doc.blob(blob_id).size + 1) for blob_id in ids}
        files = unseal.open_package(unseal.MemorySource(blobs), doc, content_key)
    except PackageError as exc:
        channel.send({"type": "error", "reason": exc.reason, "detail": str(exc)})
        raise
    channel.send({"type": "done", "files": len(files)})
    return files


# -- the owner's side ------------------------------------------------------------------------------------


@dataclass
class PushTrust:
    """What the owner trusts: anchors, its own policy, and collateral it holds."""

    anchors: TrustAnchors
    policy: Policy
    collateral: CollateralSet


def push(channel: Channel, package_dir: str | os.PathLike[str], content_key: bytes, publisher, trust_: PushTrust,
         at=None) -> dict[str, Any]:
    """Verify the keep's evidence, then send it the package sealed to its key. Returns the keep's claims."""
    source = unseal.DirectorySource(package_dir)
    doc = unseal.read_manifest(source, publisher)
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
    verdict = trust.verify(trust.make_verifier(trust_.anchors, trust_.policy), parsed.evidence,
                           parsed.collateral.merge(trust_.collateral), fmt=kbs_evidence.FORMATS[tee], at=at)
    if verdict.status != "trusted" or verdict.claims is None:
        failed = [c for c in verdict.checks if not c.passed]
        raise PushError(f"the keep's {answer['tee']} evidence is {verdict.status} ({verdict.reason}): "
                        f"{trust.describe_failures(failed) or verdict.reason}", "refused")
    claims = verdict.claims
    expected = kbs_evidence.report_data_for(runtime_data(nonce, public))
    if not hmac.compare_digest(claims.report_data.ljust(64, b"\x00")[:64], expected):
        raise PushError("the keep's evidence does not bind this push's nonce and the keep's key", "refused")
    package_checks = trust.appraise(trust.parse_policy(doc.policy, "the package's keep policy"), claims, at)
    if any(not c.passed for c in package_checks):
        raise PushError(f"the keep does not satisfy the package's keep policy: "
                        f"{trust.describe_failures(package_checks)}", "refused")
    payload = json.dumps({"content_key": _b64(content_key), "manifest_sha256": doc.digest}).encode()
    sealed = _SUITE.encrypt(payload, keep_key, info=_info(nonce, public, answer["tee-evidence"]))
    ids = [ref.id for ref in doc.all_blobs()]
    channel.send({"type": "package", "manifest": source.manifest_token().decode().strip(), "sealed-key": _b64(sealed),
                  "blobs": ids})
    for ref in doc.all_blobs():
        channel.send_raw((source.directory / ref.path).read_bytes())
    done = channel.recv("done")
    return {"tee": answer["tee"], "files": done.get("files"), "claims": trust.claims_to_json(claims)}
