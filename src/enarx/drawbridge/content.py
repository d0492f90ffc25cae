"""Content addressing: the four SHA-2 digests, ``Content-Digest`` headers, entries and canonical JSON.

An *entry* describes one object: ``{"digest": {"sha-224": b64, "sha-256": …, "sha-384": …, "sha-512": …},
"length": n, "type": mime}`` (extra members allowed, as Enarx's custom fields). A *directory* is a JSON
object name → entry. Both are exchanged only in canonical form — keys sorted by their UTF-8 bytes, no
whitespace — so that a digest names exactly one document.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from enarx.drawbridge.names import is_entry_name

ALGORITHMS = ("sha-224", "sha-256", "sha-384", "sha-512")
HASHLIB = {"sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}
SIZES = {"sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
CT_DIRECTORY = "application/vnd.drawbridge.directory.v1+json"
CT_ENTRY = "application/vnd.drawbridge.entry.v1+json"
CT_JWS = "application/jose+json"
CT_WASM = "application/wasm"
CT_TOML = "application/toml"
CT_OCTETS = "application/octet-stream"
MAX_DIRECTORY = 16 << 20  # bytes of one directory document
MAX_ENTRY = 64 << 10  # bytes of one tag entry


class ContentError(ValueError):
    """Bytes, headers or JSON that do not follow the content-addressing rules; ``reason`` is a stable token."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def canonical(value: Any) -> bytes:
    """Compact JSON with keys sorted by their UTF-8 bytes (ASCII escapes kept, as serde_json's output)."""
    return json.dumps(_sorted(value), separators=(",", ":"), ensure_ascii=False).encode()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=lambda k: k.encode())}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def parse_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ContentError("bad-json", f"{what} is not JSON: {exc}") from None


def parse_canonical(body: bytes, what: str) -> Any:
    """The JSON document in ``body``, which must already be in canonical form."""
    value = parse_json(body, what)
    if canonical(value) != body:
        raise ContentError("not-canonical", f"{what} is not canonical JSON (sorted keys, no whitespace)")
    return value


# -- digests ---------------------------------------------------------------------------------------


_PAIR_POOL: Any = None
PARALLEL_MIN = 256 << 10
# Two lanes of about equal cost (SHA-384 and SHA-512 each cost about three times SHA-224/256): one on the
# calling thread, one on a helper thread; hashlib releases the GIL, so both cores hash at once.
LANES = (("sha-256", "sha-384"), ("sha-224", "sha-512"))


def _pool() -> Any:
    global _PAIR_POOL
    if _PAIR_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _PAIR_POOL = ThreadPoolExecutor(1, thread_name_prefix="sha2")
    return _PAIR_POOL


class Hasher:
    """All four SHA-2 digests of a stream, in one pass. Large blocks are hashed on two cores at once."""

    def __init__(self) -> None:
        self.hashes = {alg: hashlib.new(HASHLIB[alg]) for alg in ALGORITHMS}
        self.length = 0
        self._lanes = [[self.hashes[alg] for alg in lane] for lane in LANES]

    def update(self, data: bytes | memoryview) -> None:
        self.length += len(data)
        if len(data) < PARALLEL_MIN:
            for h in self.hashes.values():
                h.update(data)
            return
        other = _pool().submit(_update_all, self._lanes[1], data)
        _update_all(self._lanes[0], data)
        other.result()

    def digests(self) -> dict[str, bytes]:
        return {alg: h.digest() for alg, h in self.hashes.items()}


def hash_blocks(chunks: Iterable[bytes], sink: Any = None, block: int = 1 << 20) -> Hasher:
    """Hash a stream of chunks while it is still arriving: 1 MiB blocks are handed to a worker thread (one
    block in flight), so the digests cost little wall time. ``sink(block)`` also receives every block."""
    from concurrent.futures import ThreadPoolExecutor

    hasher = Hasher()

    def consume(parts: list[bytes]) -> None:
        data = b"".join(parts)
        hasher.update(data)
        if sink is not None:
            sink(data)

    with ThreadPoolExecutor(1, thread_name_prefix="sha2-stream") as pool:
        pending = None
        parts: list[bytes] = []
        size = 0
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= block:
                if pending is not None:
                    pending.result()
                pending = pool.submit(consume, parts)
                parts, size = [], 0
        if pending is not None:
            pending.result()
        consume(parts)
    return hasher


def _update_all(hashes: list[Any], data: bytes | memoryview) -> None:
    for h in hashes:
        h.update(data)


def digests_of(data: bytes) -> dict[str, bytes]:
    hasher = Hasher()
    hasher.update(data)
    return hasher.digests()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str, alg: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ContentError("bad-digest", f"{alg} digest {text!r} is not standard base64") from None
    if len(raw) != SIZES[alg]:
        raise ContentError("bad-digest", f"{alg} digest has {len(raw)} bytes, expected {SIZES[alg]}")
    return raw


def format_content_digest(digests: dict[str, bytes]) -> str:
    return ", ".join(f"{alg}=:{b64(digests[alg])}:" for alg in ALGORITHMS if alg in digests)


def parse_content_digest(values: Iterable[str]) -> dict[str, bytes]:
    """``Content-Digest`` header values (merged) → {algorithm: raw digest}. Unknown algorithms are ignored
    (RFC 9530); a malformed item, a repeated algorithm or no known algorithm at all is an error."""
    out: dict[str, bytes] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            alg, sep, rest = item.partition("=")
            alg = alg.strip().lower()
            rest = rest.strip()
            if not sep or len(rest) < 2 or rest[0] != ":" or rest[-1] != ":":
                raise ContentError("bad-digest", f"malformed Content-Digest item {item[:80]!r}")
            if alg not in SIZES:
                continue
            if alg in out:
                raise ContentError("bad-digest", f"Content-Digest names {alg} twice")
            out[alg] = unb64(rest[1:-1], alg)
    if not out:
        raise ContentError("no-digest", "a Content-Digest with sha-224, sha-256, sha-384 or sha-512 is required")
    return out


def same_digests(expected: dict[str, bytes], actual: dict[str, bytes]) -> bool:
    """Every algorithm of ``expected`` is present in ``actual`` with the same value (constant time each)."""
    return all(alg in actual and hmac.compare_digest(value, actual[alg]) for alg, value in expected.items())


# -- entries and directories -------------------------------------------------------------------------


class Entry:
    """One object's description: all four digests, length and media type (plus custom members)."""

    __slots__ = ("digests", "extra", "length", "type")

    def __init__(self, digests: dict[str, bytes], length: int, type: str, extra: dict[str, Any] | None = None):
        self.digests = digests
        self.length = length
        self.type = type
        self.extra = extra or {}

    @classmethod
    def of(cls, data: bytes, type: str) -> Entry:
        return cls(digests_of(data), len(data), type)

    @classmethod
    def from_json(cls, value: Any, where: str = "entry") -> Entry:
        if not isinstance(value, dict):
            raise ContentError("bad-entry", f"{where} must be a JSON object")
        digest, length, mime = value.get("digest"), value.get("length"), value.get("type")
        if not isinstance(digest, dict) or set(digest) != set(ALGORITHMS):
            raise ContentError("bad-entry", f"{where}: digest must hold exactly {', '.join(ALGORITHMS)}")
        if not all(isinstance(v, str) for v in digest.values()):
            raise ContentError("bad-entry", f"{where}: digests must be base64 strings")
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length < 1 << 53:
            raise ContentError("bad-entry", f"{where}: length must be a non-negative integer")
        if not isinstance(mime, str) or not 0 < len(mime) <= 255 or "/" not in mime:
            raise ContentError("bad-entry", f"{where}: type must be a media type")
        extra = {k: v for k, v in value.items() if k not in ("digest", "length", "type")}
        return cls({alg: unb64(digest[alg], alg) for alg in ALGORITHMS}, length, mime, extra)

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "digest": {alg: b64(self.digests[alg]) for alg in ALGORITHMS},
                "length": self.length, "type": self.type}

    def encode(self) -> bytes:
        return canonical(self.to_json())

    @property
    def is_directory(self) -> bool:
        return self.type == CT_DIRECTORY

    def content_digest(self) -> str:
        return format_content_digest(self.digests)

    def matches(self, other: Entry) -> bool:
        """Same object: equal digests, length and type."""
        return self.length == other.length and self.type == other.type and same_digests(self.digests, other.digests)

    def check(self, data: bytes, where: str) -> None:
        """Raise unless ``data`` is exactly the object this entry describes."""
        if len(data) != self.length:
            raise ContentError("length-mismatch", f"{where}: {len(data)} bytes, expected {self.length}")
        if not same_digests(self.digests, digests_of(data)):
            raise ContentError("digest-mismatch", f"{where}: content does not match its digest")


def parse_directory(body: bytes, where: str = "directory") -> dict[str, Entry]:
    """A canonical directory document → {name: entry}; names follow the entry-name rules."""
    if len(body) > MAX_DIRECTORY:
        raise ContentError("too-large", f"{where} is larger than {MAX_DIRECTORY} bytes")
    value = parse_canonical(body, where)
    if not isinstance(value, dict):
        raise ContentError("bad-directory", f"{where} must be a JSON object of entries")
    out = {}
    for name, item in value.items():
        if not is_entry_name(name):
            raise ContentError("bad-name", f"{where}: entry name {name[:80]!r} is not allowed "
                               "(letters, digits, '.', '_', ':', '-')")
        out[name] = Entry.from_json(item, f"{where}: {name}")
    return out


def encode_directory(entries: dict[str, Entry]) -> bytes:
    return canonical({name: entry.to_json() for name, entry in entries.items()})
