"""Chunked AEAD for one file (one *blob*): the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár.

A blob is a 24-byte header followed by chunks. Every chunk but the last holds exactly ``chunk_size``
plaintext bytes; the last holds 0…``chunk_size``. Each chunk is sealed with the AEAD (AES-256-GCM or
ChaCha20-Poly1305, from ``cryptography``) under a per-blob key and the 96-bit nonce
``counter (88 bits, big-endian) ‖ last-flag (8 bits)``, with the header, package id and blob id as
associated data. So a reordered chunk fails (counter), a truncated blob fails (its new last chunk was not
sealed with the last flag), appended data fails (nothing may follow the last chunk), and a chunk moved
from another blob or package fails (different key and associated data).

The per-blob key is HKDF-SHA256 of the package's content key, salted with the header's random salt and
bound to package id and blob id, so no two blobs ever share a key even if a content key were reused.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enarx.packaging.errors import PackageError

MAGIC = b"ENXB"
VERSION = 1
TAG_SIZE = 16
ID_SIZE = 16  # package ids and blob ids are 16 random bytes
MIN_CHUNK_LOG2, MAX_CHUNK_LOG2 = 12, 24  # 4 KiB … 16 MiB
DEFAULT_CHUNK_LOG2 = 18  # 256 KiB
MAX_CHUNKS = 1 << 32
AEADS: dict[str, tuple[int, type]] = {"AES-256-GCM": (1, AESGCM), "ChaCha20-Poly1305": (2, ChaCha20Poly1305)}
_AEAD_BY_ID = {ident: (name, cls) for name, (ident, cls) in AEADS.items()}
_HEADER = struct.Struct(">4sBBBB16s")
HEADER_SIZE = _HEADER.size
_KEY_INFO = b"enarx-package/v1 blob key\x00"

Reader = Callable[[int], bytes]


@dataclass(frozen=True)
class BlobHeader:
    aead: str
    chunk_log2: int
    salt: bytes

    @property
    def chunk_size(self) -> int:
        return 1 << self.chunk_log2

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, AEADS[self.aead][0], self.chunk_log2, 0, self.salt)

    @classmethod
    def parse(cls, data: bytes) -> BlobHeader:
        if len(data) < HEADER_SIZE:
            raise PackageError(f"encrypted file is {len(data)} bytes, shorter than its {HEADER_SIZE}-byte header",
                               "tampered")
        magic, version, aead_id, chunk_log2, reserved, salt = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise PackageError("not an encrypted package file (bad magic)")
        if version != VERSION:
            raise PackageError(f"encrypted file format version {version} is not supported (this enarx reads "
                               f"version {VERSION})")
        if aead_id not in _AEAD_BY_ID:
            raise PackageError(f"unknown AEAD id {aead_id} in an encrypted file")
        if not MIN_CHUNK_LOG2 <= chunk_log2 <= MAX_CHUNK_LOG2 or reserved:
            raise PackageError(f"invalid chunk size 2^{chunk_log2} in an encrypted file")
        return cls(_AEAD_BY_ID[aead_id][0], chunk_log2, salt)


def _check_ids(package_id: bytes, blob_id: bytes) -> None:
    if len(package_id) != ID_SIZE or len(blob_id) != ID_SIZE:
        raise ValueError("package and blob ids are 16 bytes")


def _cipher(content_key: bytes, header: BlobHeader, package_id: bytes, blob_id: bytes):
    if len(content_key) != 32:
        raise PackageError("a content key is 32 bytes", "wrong-key")
    key = HKDF(hashes.SHA256(), 32, header.salt, _KEY_INFO + package_id + blob_id).derive(content_key)
    return AEADS[header.aead][1](key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class BlobWriter:
    """Seal a stream: ``write`` plaintext in any pieces, then ``close``; ciphertext goes to ``sink``.

    ``size`` and ``sha256`` (of the ciphertext, header included) are known after ``close``.
    """

    def __init__(self, sink: Callable[[bytes], object], content_key: bytes, package_id: bytes, blob_id: bytes,
                 *, aead: str = "AES-256-GCM", chunk_log2: int = DEFAULT_CHUNK_LOG2):
        _check_ids(package_id, blob_id)
        if aead not in AEADS:
            raise ValueError(f"unknown AEAD {aead!r}")
        if not MIN_CHUNK_LOG2 <= chunk_log2 <= MAX_CHUNK_LOG2:
            raise ValueError("chunk size out of range")
        self.header = BlobHeader(aead, chunk_log2, os.urandom(16))
        header = self.header.pack()
        self._aad = header + package_id + blob_id
        self._cipher = _cipher(content_key, self.header, package_id, blob_id)
        self._sink = sink
        self._digest = hashlib.sha256()
        self._pending = bytearray()
        self._counter = 0
        self.size = 0
        self.plaintext_size = 0
        self._emit(header)

    def _emit(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        self._sink(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        if self._counter >= MAX_CHUNKS:
            raise PackageError("file too large for one encrypted stream")
        self._emit(self._cipher.encrypt(_nonce(self._counter, last), chunk, self._aad))
        self._counter += 1

    def write(self, data: bytes) -> None:
        self.plaintext_size += len(data)
        self._pending += data
        size = self.header.chunk_size
        # keep at least one byte back: the last chunk must be sealed with the last flag
        while len(self._pending) > size:
            self._seal(bytes(self._pending[:size]), False)
            del self._pending[:size]

    def close(self) -> None:
        self._seal(bytes(self._pending), True)
        self._pending.clear()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def decrypt_chunks(read: Reader, content_key: bytes, package_id: bytes, blob_id: bytes,
                   *, max_plaintext: int | None = None) -> Iterator[bytes]:
    """Yield the plaintext of a blob chunk by chunk, each chunk authenticated before it is yielded.

    The generator raises :class:`PackageError` (``tampered``) at the first chunk that fails, and only
    finishes normally after the last-flagged chunk with nothing after it. A caller that needs the whole
    file must consume the generator to the end before trusting any of it.
    """
    _check_ids(package_id, blob_id)
    raw_header = bytes(read(HEADER_SIZE))
    header = BlobHeader.parse(raw_header)
    aad = raw_header + package_id + blob_id
    cipher = _cipher(content_key, header, package_id, blob_id)
    sealed_size = header.chunk_size + TAG_SIZE
    current = read(sealed_size)
    counter = 0
    total = 0
    while True:
        if len(current) < TAG_SIZE:
            raise PackageError("encrypted file is truncated (a chunk is shorter than its tag)", "tampered")
        following = read(sealed_size) if len(current) == sealed_size else b""
        last = not following
        try:
            plain = cipher.decrypt(_nonce(counter, last), current, aad)
        except InvalidTag:
            raise PackageError(f"encrypted file chunk {counter} failed authentication: the file was modified, "
                               "truncated, reordered or belongs to another package, or the key is wrong",
                               "tampered") from None
        total += len(plain)
        if max_plaintext is not None and total > max_plaintext:
            raise PackageError("encrypted file decrypts to more bytes than its index declares", "tampered")
        yield plain
        if last:
            return
        counter += 1
        current = following


def decrypt_into(read: Reader, content_key: bytes, package_id: bytes, blob_id: bytes, out: memoryview) -> None:
    """Decrypt a blob whose plaintext is exactly ``len(out)`` bytes straight into ``out`` (no copies).

    The same checks as :func:`decrypt_chunks`; a blob that decrypts to more or fewer bytes is ``tampered``.
    On an exception, ``out`` holds unauthenticated garbage: the caller must discard it.
    """
    _check_ids(package_id, blob_id)
    raw_header = bytes(read(HEADER_SIZE))
    header = BlobHeader.parse(raw_header)
    aad = raw_header + package_id + blob_id
    cipher = _cipher(content_key, header, package_id, blob_id)
    size, sealed_size = header.chunk_size, header.chunk_size + TAG_SIZE
    expected = max(1, -(-len(out) // size))  # chunks the declared plaintext needs
    pos = 0
    for counter in range(expected):
        last = counter == expected - 1
        want = len(out) - pos if last else size
        current = read(sealed_size)
        if len(current) != want + TAG_SIZE:
            raise PackageError(f"encrypted file chunk {counter} has the wrong length: the file was truncated "
                               "or does not match its declared size", "tampered")
        try:
            cipher.decrypt_into(_nonce(counter, last), current, aad, out[pos:pos + want])
        except InvalidTag:
            raise PackageError(f"encrypted file chunk {counter} failed authentication: the file was modified, "
                               "truncated, reordered or belongs to another package, or the key is wrong",
                               "tampered") from None
        pos += want
    if read(1):
        raise PackageError("data follows the last chunk of an encrypted file", "tampered")


def decrypt_bytes(data: bytes, content_key: bytes, package_id: bytes, blob_id: bytes) -> bytes:
    """A whole blob held in memory → its plaintext (raises on any failure; nothing partial returned)."""
    view = memoryview(data)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos:pos + n])
        pos += len(chunk)
        return chunk

    return b"".join(decrypt_chunks(read, content_key, package_id, blob_id))


def encrypt_bytes(plaintext: bytes, content_key: bytes, package_id: bytes, blob_id: bytes, **options) -> bytes:
    """Seal ``plaintext`` as one blob held in memory (small files, the index, tests)."""
    out: list[bytes] = []
    writer = BlobWriter(out.append, content_key, package_id, blob_id, **options)
    writer.write(plaintext)
    writer.close()
    return b"".join(out)
