"""Build an encrypted package from a plaintext one (on the publisher's machine).

Input: a ``.wasm`` file, or a package directory (``main.wasm``, optional ``Enarx.toml``, data files in
subdirectories). Output directory::

    manifest.jws          the signed manifest (public)
    blobs/<id>.enc        one sealed stream per file, plus one for the index (ids are random)

Files are streamed through the AEAD: a large data file is never held in memory whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from enarx.packaging import index, keys, manifest, stream, trust
from enarx.packaging.errors import PackageError

READ_SIZE = 1 << 20


@dataclass
class SealedPackage:
    """The result of sealing: where it is, its manifest and token, and the content key (keep it secret)."""

    directory: Path
    manifest: manifest.Manifest
    token: str
    content_key: bytes

    def __repr__(self) -> str:  # never show the key
        return f"SealedPackage({str(self.directory)!r}, package_id={self.manifest.package_id})"


def plaintext_files(source: Path) -> list[tuple[str, Path]]:
    """(package path, file) for every regular file of a package; symlinks and special files are refused."""
    if source.is_file():
        return [(index.MODULE, source)]
    if not source.is_dir():
        raise PackageError(f"{source}: no such package file or directory", "io")
    out = []
    for root, dirs, files in os.walk(source, followlinks=False):
        dirs.sort()
        for name in [*dirs, *files]:
            full = Path(root) / name
            if full.is_symlink():
                raise PackageError(f"{full}: symbolic links are not packaged (copy the file in)", "io")
        for name in sorted(files):
            full = Path(root) / name
            if not full.is_file():
                raise PackageError(f"{full}: only regular files can be packaged", "io")
            out.append((index.check_path(full.relative_to(source).as_posix()), full))
    if not any(p == index.MODULE for p, _ in out):
        raise PackageError(f"{source}: a package directory needs a main.wasm", "io")
    return out


def seal_package(source: str | os.PathLike[str], out: str | os.PathLike[str], *, sign_key: keys.PublisherKey,
                 policy: str, resource: str | None = None, name: str = "", aead: str = "AES-256-GCM",
                 chunk_log2: int = stream.DEFAULT_CHUNK_LOG2, content_key: bytes | None = None) -> SealedPackage:
    """Encrypt ``source`` into the new directory ``out`` under a fresh content key and sign the manifest."""
    trust.parse_policy(policy)  # refuse a policy no keep could ever be judged by
    files = plaintext_files(Path(source))
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackageError(f"{out}: output directory exists and is not empty", "io")
    (out / "blobs").mkdir(parents=True, exist_ok=True)
    content_key = content_key or keys.new_content_key()
    package_id = os.urandom(stream.ID_SIZE)
    options = {"aead": aead, "chunk_log2": chunk_log2}
    entries, refs = [], []
    for path, full in files:
        blob_id = os.urandom(stream.ID_SIZE)
        ref = _seal_file(full, out, content_key, package_id, blob_id, options)
        refs.append(ref)
        entries.append(index.IndexEntry(path, ref.id, full.stat().st_size))
    index_id = os.urandom(stream.ID_SIZE)
    sealed_index = stream.encrypt_bytes(index.encode(entries), content_key, package_id, index_id, **options)
    index_ref = _write_blob(out, index_id, sealed_index)
    refs.sort(key=lambda r: r.id)  # the manifest does not reveal the order of files either
    doc = manifest.Manifest(package_id=package_id.hex(), key_id=keys.key_id(content_key, package_id),
                            policy=policy, index=index_ref, blobs=tuple(refs), aead=aead, chunk_log2=chunk_log2,
                            name=name, resource=resource)
    manifest.parse_payload(doc.canonical())  # the same strict checks a reader applies
    token = manifest.sign(doc, sign_key)
    (out / "manifest.jws").write_text(token + "\n")
    return SealedPackage(out, doc, token, content_key)


def _seal_file(full: Path, out: Path, content_key: bytes, package_id: bytes, blob_id: bytes,
               options: dict) -> manifest.BlobRef:
    target = out / f"blobs/{blob_id.hex()}.enc"
    with open(full, "rb") as src, open(target, "xb") as dst:
        writer = stream.BlobWriter(dst.write, content_key, package_id, blob_id, **options)
        while block := src.read(READ_SIZE):
            writer.write(block)
        writer.close()
    return manifest.BlobRef(blob_id.hex(), writer.size, writer.sha256)


def _write_blob(out: Path, blob_id: bytes, data: bytes) -> manifest.BlobRef:
    import hashlib

    (out / f"blobs/{blob_id.hex()}.enc").write_bytes(data)
    return manifest.BlobRef(blob_id.hex(), len(data), hashlib.sha256(data).hexdigest())
