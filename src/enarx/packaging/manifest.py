"""The signed manifest of an encrypted package (``manifest.jws``).

A compact JWS (``joserfc``) whose payload is canonical JSON (sorted keys, no spaces, UTF-8). It binds the
SHA-256 of every ciphertext file, commits to the content key (``key_id``) and carries the keep policy —
the attestation policy language — that a keep must satisfy to be given the key. Nothing in it is secret:
file names, sizes and kinds live in the encrypted index. Deployers verify it against the publisher's
pinned public key; :func:`parse_unverified` exists for tools that only display or route it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from enarx.packaging import keys
from enarx.packaging.errors import PackageError
from enarx.packaging.stream import AEADS, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2

FORMAT = "enarx-encrypted-package"
VERSION = 1
JWS_TYPE = "enarx-package-manifest+jws"
MAX_MANIFEST = 1 << 20
MAX_BLOBS = 10_000
MAX_POLICY = 64 * 1024
MAX_BLOB_SIZE = 1 << 40
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RESOURCE = re.compile(r"[A-Za-z0-9._-]{1,128}/[A-Za-z0-9._-]{1,128}/[A-Za-z0-9._-]{1,128}")
_KEYS = {"format", "version", "package_id", "name", "aead", "chunk_log2", "key_id", "resource", "policy",
         "index", "blobs"}


@dataclass(frozen=True)
class BlobRef:
    """One ciphertext file: ``blobs/<id>.enc`` with its exact size and SHA-256."""

    id: str
    size: int
    sha256: str

    @property
    def path(self) -> str:
        return f"blobs/{self.id}.enc"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    package_id: str
    key_id: str
    policy: str
    index: BlobRef
    blobs: tuple[BlobRef, ...]
    aead: str = "AES-256-GCM"
    chunk_log2: int = 18
    name: str = ""
    resource: str | None = None  # the key broker's resource path: "<repository>/<type>/<tag>"
    signer: dict[str, Any] = field(default_factory=dict, compare=False)  # JWS header of a verified manifest

    @property
    def package_id_bytes(self) -> bytes:
        return bytes.fromhex(self.package_id)

    def all_blobs(self) -> tuple[BlobRef, ...]:
        return (self.index, *self.blobs)

    def blob(self, blob_id: str) -> BlobRef:
        for ref in self.all_blobs():
            if ref.id == blob_id:
                return ref
        raise PackageError(f"the index names file {blob_id} that the manifest does not list", "tampered")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "package_id": self.package_id, "name": self.name,
            "aead": self.aead, "chunk_log2": self.chunk_log2, "key_id": self.key_id, "resource": self.resource,
            "policy": self.policy, "index": self.index.to_json(), "blobs": [b.to_json() for b in self.blobs],
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical payload: the package's identity (bound into keeps as host data)."""
        return hashlib.sha256(self.canonical()).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(manifest: Manifest, key: keys.PublisherKey) -> str:
    header = {"alg": keys.algorithm(key), "typ": JWS_TYPE, "kid": keys.thumbprint(key)}
    return jws.serialize_compact(header, manifest.canonical(), key)


def verify(token: str | bytes, publisher: keys.PublisherKey) -> Manifest:
    """The manifest, if ``token`` is signed by ``publisher`` (the pinned key); ``PackageError`` otherwise."""
    text = _token_text(token)
    try:
        obj = jws.deserialize_compact(text, publisher, algorithms=[keys.algorithm(publisher)])
    except JoseError as exc:
        raise PackageError("the package manifest is not signed by the pinned publisher key "
                           f"({keys.thumbprint(publisher)}): {exc.description or exc.error}", "signature") from None
    except (ValueError, TypeError):
        raise PackageError("the package manifest is not a JWS", "format") from None
    header = obj.headers()
    if header.get("typ") != JWS_TYPE:
        raise PackageError(f"the signed object is not a package manifest (typ {header.get('typ')!r})")
    manifest = parse_payload(obj.payload)
    return Manifest(**{**manifest.__dict__, "signer": dict(header)})


def parse_unverified(token: str | bytes) -> Manifest:
    """The manifest **without** checking its signature — only for display and routing, never for trust."""
    text = _token_text(token)
    try:
        obj = jws.extract_compact(text.encode())
    except (JoseError, ValueError, TypeError):
        raise PackageError("the package manifest is not a compact JWS", "format") from None
    return parse_payload(obj.payload)


def _token_text(token: str | bytes) -> str:
    if len(token) > MAX_MANIFEST:
        raise PackageError(f"package manifest larger than {MAX_MANIFEST} bytes")
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise PackageError("the package manifest is not a compact JWS (not ASCII)") from None
    return token.strip()


def parse_payload(payload: bytes) -> Manifest:
    """Strictly validate the JSON payload (every field typed and bounded; unknown fields refused)."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise PackageError("the package manifest payload is not JSON") from None
    if not isinstance(data, dict):
        raise PackageError("the package manifest payload is not a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise PackageError(f"the package manifest has unknown field {unknown[0]!r}")
    if data.get("format") != FORMAT:
        raise PackageError(f"not an encrypted package manifest (format {data.get('format')!r})")
    if data.get("version") != VERSION:
        raise PackageError(f"package format version {data.get('version')!r} is not supported (this enarx reads "
                           f"version {VERSION})")
    aead = data.get("aead")
    if aead not in AEADS:
        raise PackageError(f"unknown AEAD {aead!r} in the package manifest")
    chunk_log2 = data.get("chunk_log2")
    if not _is_int(chunk_log2) or not MIN_CHUNK_LOG2 <= chunk_log2 <= MAX_CHUNK_LOG2:
        raise PackageError("the package manifest's chunk_log2 is out of range")
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 256:
        raise PackageError("the package manifest's name must be a string of at most 256 characters")
    resource = data.get("resource")
    if resource is not None and (not isinstance(resource, str) or not _RESOURCE.fullmatch(resource)):
        raise PackageError("the package manifest's resource must be \"<repository>/<type>/<tag>\"")
    policy = data.get("policy")
    if not isinstance(policy, str) or len(policy.encode()) > MAX_POLICY:
        raise PackageError(f"the package manifest's policy must be TOML text of at most {MAX_POLICY} bytes")
    blobs = data.get("blobs")
    if not isinstance(blobs, list) or len(blobs) > MAX_BLOBS:
        raise PackageError(f"the package manifest's blobs must be a list of at most {MAX_BLOBS}")
    refs = tuple(_blob_ref(b, f"blobs[{i}]") for i, b in enumerate(blobs))
    index = _blob_ref(data.get("index"), "index")
    ids = [index.id, *(r.id for r in refs)]
    if len(set(ids)) != len(ids):
        raise PackageError("the package manifest lists a file id twice")
    return Manifest(package_id=_hex(data.get("package_id"), _HEX32, "package_id"),
                    key_id=_hex(data.get("key_id"), _HEX64, "key_id"), policy=policy, index=index, blobs=refs,
                    aead=aead, chunk_log2=chunk_log2, name=name, resource=resource)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex(value: Any, pattern: re.Pattern[str], where: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise PackageError(f"the package manifest's {where} is not a lowercase hex id of the right length")
    return value


def _blob_ref(value: Any, where: str) -> BlobRef:
    if not isinstance(value, dict) or set(value) != {"id", "size", "sha256"}:
        raise PackageError(f"the package manifest's {where} must be {{id, size, sha256}}")
    size = value["size"]
    if not _is_int(size) or not 0 < size <= MAX_BLOB_SIZE:
        raise PackageError(f"the package manifest's {where}.size is out of range")
    return BlobRef(_hex(value["id"], _HEX32, f"{where}.id"), size, _hex(value["sha256"], _HEX64, f"{where}.sha256"))
