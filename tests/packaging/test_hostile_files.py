"""A package directory under an attacker's control (the host's disk, a registry mirror): special files,
symbolic links, oversized manifests, downgraded blob headers, and hostile manifests that are never trusted."""

from __future__ import annotations

import base64
import json
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_format import CHUNK_LOG2, POLICY, blob_of, expect, open_dir, publisher, sealed  # noqa: F401

from enarx.packaging import manifest, seal, stream, trust, unseal
from enarx.packaging.errors import PackageError


def test_a_fifo_in_place_of_a_blob_is_refused_without_hanging(tmp_path, publisher):  # noqa: F811
    pkg = sealed(tmp_path, publisher)
    target = blob_of(pkg, "main.wasm")
    target.unlink()
    os.mkfifo(target)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(outcome, open_dir, pkg.directory, publisher, pkg.content_key),
                              daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "opening a package with a FIFO for a blob hung"
    assert isinstance(outcome[0], PackageError) and "not a regular file" in str(outcome[0])


def _capture(out: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        out.append(exc)


def test_symbolic_links_are_not_followed(tmp_path, publisher):  # noqa: F811
    pkg = sealed(tmp_path, publisher)
    target = blob_of(pkg, "main.wasm")
    moved = tmp_path / "elsewhere.enc"
    target.rename(moved)
    target.symlink_to(moved)
    expect("digest", open_dir, pkg.directory, publisher, pkg.content_key)
    token = pkg.directory / "manifest.jws"
    token.rename(tmp_path / "manifest.elsewhere")
    token.symlink_to(tmp_path / "manifest.elsewhere")
    expect("io", unseal.DirectorySource(pkg.directory).manifest_token)


def test_an_oversized_manifest_is_refused_before_it_is_read_whole(tmp_path, publisher):  # noqa: F811
    pkg = sealed(tmp_path, publisher)
    (pkg.directory / "manifest.jws").write_bytes(b"e" * (manifest.MAX_MANIFEST + 4096))
    err = expect("format", unseal.DirectorySource(pkg.directory).manifest_token)
    assert "larger than" in str(err)


def test_a_blob_header_that_contradicts_the_signed_manifest_is_refused(tmp_path, publisher):  # noqa: F811
    """The chunk size and AEAD are signed in the manifest: a re-encrypted or re-headed blob cannot change them."""
    pkg = sealed(tmp_path, publisher)
    doc = pkg.manifest
    data = bytearray(blob_of(pkg, "Enarx.toml").read_bytes())
    header = stream.BlobHeader.parse(bytes(data))
    other = stream.BlobHeader("ChaCha20-Poly1305", header.chunk_log2, header.salt).pack()
    source = unseal.MemorySource({ref.path: (pkg.directory / ref.path).read_bytes() for ref in doc.all_blobs()})
    entries = unseal.read_index(source, doc, pkg.content_key)
    blob = next(e.blob for e in entries if e.path == "Enarx.toml")
    source.files[f"blobs/{blob}.enc"] = other + bytes(data[stream.HEADER_SIZE:])
    err = expect("tampered", unseal.open_package, source, doc, pkg.content_key, verify_digests=False)
    assert "differs from the signed manifest" in str(err)


def test_the_index_records_the_sealed_size_even_if_the_file_grows_meanwhile(tmp_path, publisher, monkeypatch):  # noqa: F811
    src = tmp_path / "app.wasm"
    src.write_bytes(b"\0asm\x01\0\0\0" + b"x" * 5000)
    real = seal._seal_file

    def grow_after_sealing(full, *args):
        result = real(full, *args)
        with open(full, "ab") as fh:
            fh.write(b"appended later")
        return result

    monkeypatch.setattr(seal, "_seal_file", grow_after_sealing)
    pkg = seal.seal_package(src, tmp_path / "pkg", sign_key=publisher[0], policy=POLICY, chunk_log2=CHUNK_LOG2)
    files = open_dir(pkg.directory, publisher, pkg.content_key)
    assert bytes(files["main.wasm"]) == b"\0asm\x01\0\0\0" + b"x" * 5000


# -- hostile manifests and policies: a PackageError, never another exception --------------------------------

_DOC = {"format": "enarx-encrypted-package", "version": 1, "package_id": "0" * 32, "key_id": "0" * 64,
        "aead": "AES-256-GCM", "chunk_log2": 18, "name": "", "resource": "a/b/c", "policy": "",
        "index": {"id": "1" * 32, "size": 40, "sha256": "0" * 64}, "blobs": []}
_text = st.text(alphabet=st.characters(), max_size=30)
_values = st.recursive(st.none() | st.booleans() | st.integers() | _text,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                       max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(sorted(_DOC)), value=_values)
def test_fuzz_unverified_manifests(field, value):
    payload = json.dumps({**_DOC, field: value}).encode()
    token = "eyJhbGciOiJFUzI1NiJ9." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".AA"
    try:
        doc = manifest.parse_unverified(token)
        assert doc.digest
    except PackageError:
        pass


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('[]{}="ab.,\n 1tu'), max_size=300))
def test_fuzz_keep_policies(text):
    try:
        trust.parse_keep_policy(text)
    except PackageError:
        pass


def test_allow_test_anchors_must_be_a_boolean():
    with pytest.raises(PackageError) as exc:
        trust.parse_keep_policy('allow_test_anchors = "yes"\n')
    assert exc.value.reason == "policy"
    assert trust.parse_keep_policy("allow_test_anchors = true\n").allow_test_anchors
    with pytest.raises(PackageError):  # the broker's and an owner's own policies are plain attestation policies
        trust.parse_policy("allow_test_anchors = true\n")


def test_a_manifest_listing_the_most_files_allowed_verifies(publisher):  # noqa: F811
    """joserfc's default payload limit (128 kB) would refuse a manifest of a few thousand files (CPython's
    standard library is 3,164): the manifest's own limits apply instead."""
    refs = tuple(manifest.BlobRef(f"{i:032x}", 1 << 30, "ab" * 32) for i in range(1, manifest.MAX_BLOBS + 1))
    doc = manifest.Manifest(package_id="cd" * 16, key_id="ef" * 32, policy=POLICY, blobs=refs,
                            index=manifest.BlobRef("0" * 32, 100, "12" * 32))
    token = manifest.sign(doc, publisher[0])
    assert len(token) <= manifest.MAX_MANIFEST
    assert manifest.verify(token, publisher[1]).digest == doc.digest
    assert manifest.parse_unverified(token).blobs == refs
