"""Open an encrypted package with its content key — inside the keep; plaintext stays in memory.

Order of checks, each failing closed with a :class:`PackageError`: the manifest's signature against the
pinned publisher key (:func:`read_manifest`), the key commitment (``wrong-key``), every ciphertext file's
size and SHA-256 against the manifest (``digest``), every chunk's authentication (``tampered``), and the
index's sizes. Nothing is returned until every file of the package has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from enarx.packaging import index, keys, manifest, stream
from enarx.packaging.errors import PackageError

MANIFEST_NAME = "manifest.jws"


class BlobSource(Protocol):
    """Where ciphertext files come from: a directory, memory, a registry client…"""

    def reader(self, ref: manifest.BlobRef) -> Callable[[int], bytes]: ...


class DirectorySource:
    """An encrypted package directory (``manifest.jws`` + ``blobs/``)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def manifest_token(self) -> bytes:
        try:
            return (self.directory / MANIFEST_NAME).read_bytes()
        except OSError as exc:
            raise PackageError(f"{self.directory}: not an encrypted package ({MANIFEST_NAME}: {exc.strerror})",
                               "io") from None

    def reader(self, ref: manifest.BlobRef) -> Callable[[int], bytes]:
        try:
            fh = open(self.directory / ref.path, "rb")  # noqa: SIM115 - closed when the reader reaches EOF
        except OSError as exc:
            raise PackageError(f"encrypted file {ref.path} is missing: {exc.strerror}", "digest") from None

        def read(n: int) -> bytes:
            if fh.closed:
                return b""
            data = fh.read(n)
            if len(data) < n:
                fh.close()
            return data

        return read


class MemorySource:
    """Ciphertext files held in memory, keyed by their package path (``blobs/<id>.enc``)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files

    def reader(self, ref: manifest.BlobRef) -> Callable[[int], bytes]:
        data = self.files.get(ref.path)
        if data is None:
            raise PackageError(f"encrypted file {ref.path} is missing", "digest")
        view = memoryview(data)
        pos = 0

        def read(n: int) -> memoryview:
            nonlocal pos
            chunk = view[pos:pos + n]
            pos += len(chunk)
            return chunk

        return read


def read_manifest(source: DirectorySource, publisher: keys.PublisherKey) -> manifest.Manifest:
    return manifest.verify(source.manifest_token(), publisher)


class _Checked:
    """Wraps a reader: counts bytes, hashes them (when asked), refuses more than the manifest's size."""

    def __init__(self, read: Callable[[int], bytes], ref: manifest.BlobRef, verify_digest: bool):
        self._read = read
        self.ref = ref
        self.size = 0
        self._hash = hashlib.sha256() if verify_digest else None

    def __call__(self, n: int) -> bytes:
        data = self._read(min(n, self.ref.size - self.size + 1))
        self.size += len(data)
        if self.size > self.ref.size:
            raise PackageError(f"encrypted file {self.ref.path} is longer than the manifest says", "digest")
        if self._hash is not None:
            self._hash.update(data)
        return data

    def finish(self) -> None:
        if self.size != self.ref.size:
            raise PackageError(f"encrypted file {self.ref.path} is {self.size} bytes, the manifest says "
                               f"{self.ref.size}", "digest")
        if self._hash is not None and not hmac.compare_digest(self._hash.hexdigest(), self.ref.sha256):
            raise PackageError(f"encrypted file {self.ref.path} differs from the manifest's digest", "digest")


def _chunks(source: BlobSource, doc: manifest.Manifest, ref: manifest.BlobRef, content_key: bytes,
            verify_digests: bool, max_plaintext: int | None) -> Iterator[bytes]:
    checked = _Checked(source.reader(ref), ref, verify_digests)
    yield from stream.decrypt_chunks(checked, content_key, doc.package_id_bytes, bytes.fromhex(ref.id),
                                     max_plaintext=max_plaintext)
    checked.finish()


def read_index(source: BlobSource, doc: manifest.Manifest, content_key: bytes,
               verify_digests: bool = True) -> list[index.IndexEntry]:
    """The package's file list, after checking that ``content_key`` is this package's key."""
    keys.check_key(content_key, doc.package_id_bytes, doc.key_id)
    entries = index.decode(b"".join(_chunks(source, doc, doc.index, content_key, verify_digests, index.MAX_INDEX)))
    listed = {ref.id for ref in doc.blobs}
    used = {e.blob for e in entries}
    if used != listed:
        raise PackageError("the package index and the manifest list different files", "tampered")
    return entries


def iter_files(source: BlobSource, doc: manifest.Manifest, content_key: bytes, *,
               verify_digests: bool = True) -> Iterator[tuple[index.IndexEntry, Iterator[bytes]]]:
    """Each file with a generator of its authenticated plaintext chunks. Consume every generator to its
    end: only then is the file known to be complete; trust nothing before the whole package passed."""
    for entry in read_index(source, doc, content_key, verify_digests):
        yield entry, _sized(entry, _chunks(source, doc, doc.blob(entry.blob), content_key, verify_digests,
                                           entry.size))


def _sized(entry: index.IndexEntry, chunks: Iterator[bytes]) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        yield chunk
    if total != entry.size:
        raise PackageError(f"{entry.path} decrypts to {total} bytes, the index says {entry.size}", "tampered")


def open_package(source: BlobSource, doc: manifest.Manifest, content_key: bytes, *,
                 verify_digests: bool = True) -> dict[str, bytearray]:
    """Every file of the package, in memory, by package path — all verified, or an exception.

    Each file is decrypted straight into one buffer of its declared size (no per-chunk copies)."""
    files: dict[str, bytearray] = {}
    for entry in read_index(source, doc, content_key, verify_digests):
        ref = doc.blob(entry.blob)
        checked = _Checked(source.reader(ref), ref, verify_digests)
        buffer = bytearray(entry.size)
        stream.decrypt_into(checked, content_key, doc.package_id_bytes, bytes.fromhex(ref.id), memoryview(buffer))
        checked.finish()
        files[entry.path] = buffer
    return files
