"""The encrypted package format: round trips, and every tampering an attacker on the host could try."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx.packaging import index, keys, manifest, seal, stream, unseal
from enarx.packaging.errors import PackageError

MARKER = b"MARKER-f00dfeed-plaintext"
POLICY = 'tees = ["sev-snp", "tdx"]\nallow_debug = false\n'
CHUNK_LOG2 = 12  # 4 KiB chunks so that small test files have several


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> tuple[keys.PublisherKey, keys.PublisherKey]:
    path = tmp_path_factory.mktemp("keys") / "sign.key"
    keys.generate_signing_key(path)
    return keys.load_signing_key(path), keys.load_public_key(path.with_name("sign.key.pub"))


def make_source(root: Path) -> Path:
    src = root / "src"
    (src / "data" / "nested").mkdir(parents=True)
    (src / "main.wasm").write_bytes(b"\0asm\x01\0\0\0" + MARKER + os.urandom(9000))
    (src / "Enarx.toml").write_bytes(b'args = ["' + MARKER + b'"]\n')
    (src / "data" / "a.bin").write_bytes(MARKER * 700)  # several chunks
    (src / "data" / "nested" / "exact").write_bytes(os.urandom(2 * 4096))  # a multiple of the chunk size
    (src / "data" / "empty").write_bytes(b"")
    return src


def sealed(tmp_path: Path, publisher, **kw) -> seal.SealedPackage:
    src = make_source(tmp_path)
    return seal.seal_package(src, tmp_path / kw.pop("out", "pkg"), sign_key=publisher[0], policy=POLICY,
                             chunk_log2=CHUNK_LOG2, **kw)


def open_dir(directory: Path, publisher, key: bytes, verify_digests: bool = True) -> dict[str, bytes]:
    source = unseal.DirectorySource(directory)
    doc = unseal.read_manifest(source, publisher[1])
    return unseal.open_package(source, doc, key, verify_digests=verify_digests)


def blob_of(pkg: seal.SealedPackage, path: str) -> Path:
    """The ciphertext file holding package path ``path`` (found through the encrypted index)."""
    entries = unseal.read_index(unseal.DirectorySource(pkg.directory), pkg.manifest, pkg.content_key)
    blob = next(e.blob for e in entries if e.path == path)
    return pkg.directory / f"blobs/{blob}.enc"


def expect(reason: str, fn, *args, **kw) -> PackageError:
    """``fn`` fails with ``reason``; "digest" also accepts "tampered" (files are streamed: the AEAD may
    catch a changed chunk before the end of the file, where its digest is compared)."""
    with pytest.raises(PackageError) as info:
        fn(*args, **kw)
    accepted = {"digest", "tampered"} if reason == "digest" else {reason}
    assert info.value.reason in accepted, (info.value.reason, str(info.value))
    assert "\n" not in str(info.value)
    return info.value


def test_round_trip_every_file_and_no_plaintext_in_the_output(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    files = open_dir(pkg.directory, publisher, pkg.content_key)
    src = tmp_path / "src"
    assert files == {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    for path in pkg.directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert MARKER not in data and b"a.bin" not in data and b"nested" not in data, path
    assert pkg.content_key.hex() not in repr(pkg) and pkg.content_key.hex() not in pkg.token


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 7])
@pytest.mark.parametrize("aead", sorted(stream.AEADS))
def test_stream_round_trip_at_chunk_boundaries(size, aead):
    key, pid, bid = os.urandom(32), os.urandom(16), os.urandom(16)
    plain = os.urandom(size)
    sealed_bytes = stream.encrypt_bytes(plain, key, pid, bid, aead=aead, chunk_log2=CHUNK_LOG2)
    assert stream.decrypt_bytes(sealed_bytes, key, pid, bid) == plain
    chunks = max(1, -(-size // 4096))
    assert len(sealed_bytes) == stream.HEADER_SIZE + size + chunks * stream.TAG_SIZE


def test_streaming_writes_in_odd_pieces_match_one_write():
    key, pid, bid = os.urandom(32), os.urandom(16), os.urandom(16)
    plain = os.urandom(50_000)
    out: list[bytes] = []
    writer = stream.BlobWriter(out.append, key, pid, bid, chunk_log2=CHUNK_LOG2)
    for i in range(0, len(plain), 777):
        writer.write(plain[i:i + 777])
    writer.close()
    assert stream.decrypt_bytes(b"".join(out), key, pid, bid) == plain


def test_a_flipped_ciphertext_bit_fails_the_digest_and_the_aead(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    target = blob_of(pkg, "data/a.bin")
    data = bytearray(target.read_bytes())
    data[stream.HEADER_SIZE + 100] ^= 1
    target.write_bytes(bytes(data))
    expect("digest", open_dir, pkg.directory, publisher, pkg.content_key)
    err = expect("tampered", open_dir, pkg.directory, publisher, pkg.content_key, verify_digests=False)
    assert "chunk 0" in str(err)


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    size = 4096 + stream.TAG_SIZE
    body = data[stream.HEADER_SIZE:]
    return data[:stream.HEADER_SIZE], [body[i:i + size] for i in range(0, len(body), size)]


def test_reordered_chunks_fail(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    target = blob_of(pkg, "data/a.bin")
    header, chunks = _chunks(target.read_bytes())
    assert len(chunks) >= 3
    chunks[0], chunks[1] = chunks[1], chunks[0]
    target.write_bytes(header + b"".join(chunks))
    expect("tampered", open_dir, pkg.directory, publisher, pkg.content_key, verify_digests=False)


def test_a_chunk_swapped_in_from_another_file_of_the_same_package_fails(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    a, b = blob_of(pkg, "data/a.bin"), blob_of(pkg, "data/nested/exact")
    header, chunks = _chunks(a.read_bytes())
    _, other = _chunks(b.read_bytes())
    chunks[1] = other[1]
    a.write_bytes(header + b"".join(chunks))
    expect("tampered", open_dir, pkg.directory, publisher, pkg.content_key, verify_digests=False)


def test_a_chunk_from_another_package_with_the_same_key_fails(tmp_path, publisher):
    key = keys.new_content_key()
    one = sealed(tmp_path / "one", publisher, content_key=key)
    two = sealed(tmp_path / "two", publisher, content_key=key)
    a1, a2 = blob_of(one, "data/a.bin"), blob_of(two, "data/a.bin")
    header, chunks = _chunks(a1.read_bytes())
    _, foreign = _chunks(a2.read_bytes())
    chunks[0] = foreign[0]
    a1.write_bytes(header + b"".join(chunks))
    expect("tampered", open_dir, one.directory, publisher, key, verify_digests=False)


@pytest.mark.parametrize("cut", ["at-chunk-boundary", "mid-chunk", "header-only"])
def test_truncated_files_fail(tmp_path, publisher, cut):
    pkg = sealed(tmp_path, publisher)
    target = blob_of(pkg, "data/a.bin")
    header, chunks = _chunks(target.read_bytes())
    data = {"at-chunk-boundary": header + b"".join(chunks[:-1]),
            "mid-chunk": header + b"".join(chunks)[:-10],
            "header-only": header}[cut]
    target.write_bytes(data)
    expect("digest", open_dir, pkg.directory, publisher, pkg.content_key)
    expect("tampered", open_dir, pkg.directory, publisher, pkg.content_key, verify_digests=False)


def test_data_appended_after_the_last_chunk_fails(tmp_path, publisher):
    key, pid, bid = os.urandom(32), os.urandom(16), os.urandom(16)
    data = stream.encrypt_bytes(b"x" * 5000, key, pid, bid, chunk_log2=CHUNK_LOG2)
    with pytest.raises(PackageError, match="authentication"):
        stream.decrypt_bytes(data + os.urandom(4096 + 16), key, pid, bid)


def test_a_modified_manifest_fails_its_signature(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    header, payload, signature = pkg.token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=="))
    doc["policy"] = "allow_debug = true\n"
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    (pkg.directory / "manifest.jws").write_text(f"{header}.{forged}.{signature}")
    err = expect("signature", open_dir, pkg.directory, publisher, pkg.content_key)
    assert "pinned publisher key" in str(err)


def test_a_manifest_signed_by_someone_else_fails(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    keys.generate_signing_key(tmp_path / "mallory.key")
    mallory = keys.load_signing_key(tmp_path / "mallory.key")
    (pkg.directory / "manifest.jws").write_text(manifest.sign(pkg.manifest, mallory))
    expect("signature", open_dir, pkg.directory, publisher, pkg.content_key)


def test_wrong_key_and_a_key_for_another_package(tmp_path, publisher):
    one = sealed(tmp_path / "one", publisher)
    two = sealed(tmp_path / "two", publisher)
    err = expect("wrong-key", open_dir, one.directory, publisher, two.content_key)
    assert two.content_key.hex() not in str(err)
    expect("wrong-key", open_dir, one.directory, publisher, os.urandom(32))
    expect("wrong-key", open_dir, one.directory, publisher, b"short")


def test_files_swapped_between_packages_fail(tmp_path, publisher):
    one = sealed(tmp_path / "one", publisher)
    two = sealed(tmp_path / "two", publisher)
    shutil.copy(blob_of(two, "main.wasm"), blob_of(one, "main.wasm"))
    expect("digest", open_dir, one.directory, publisher, one.content_key)
    expect("tampered", open_dir, one.directory, publisher, one.content_key, verify_digests=False)


def test_a_manifest_that_omits_a_file_of_the_index_fails(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    short = manifest.Manifest(**{**pkg.manifest.__dict__, "blobs": pkg.manifest.blobs[1:]})
    (pkg.directory / "manifest.jws").write_text(manifest.sign(short, publisher[0]))
    expect("tampered", open_dir, pkg.directory, publisher, pkg.content_key)


def test_a_missing_file_fails(tmp_path, publisher):
    pkg = sealed(tmp_path, publisher)
    blob_of(pkg, "data/empty").unlink()
    expect("digest", open_dir, pkg.directory, publisher, pkg.content_key)


def test_sealing_refuses_a_bad_policy_symlinks_and_a_missing_module(tmp_path, publisher):
    src = make_source(tmp_path)
    expect("policy", seal.seal_package, src, tmp_path / "o1", sign_key=publisher[0], policy="tees = 3")
    (src / "link").symlink_to("/etc/passwd")
    expect("io", seal.seal_package, src, tmp_path / "o2", sign_key=publisher[0], policy=POLICY)
    (src / "link").unlink()
    (src / "main.wasm").unlink()
    expect("io", seal.seal_package, src, tmp_path / "o3", sign_key=publisher[0], policy=POLICY)


def test_a_bare_wasm_file_is_a_package(tmp_path, publisher):
    wasm = tmp_path / "x.wasm"
    wasm.write_bytes(b"\0asm\x01\0\0\0")
    pkg = seal.seal_package(wasm, tmp_path / "p", sign_key=publisher[0], policy=POLICY)
    assert open_dir(pkg.directory, publisher, pkg.content_key) == {"main.wasm": wasm.read_bytes()}


@pytest.mark.parametrize("path", ["", "/abs", "../up", "a/../b", "a//b", "./a", "a\\b", "a\x00b"])
def test_unsafe_index_paths_are_refused(path):
    with pytest.raises(PackageError, match="unsafe"):
        index.check_path(path)


# -- fuzzing: every parser of untrusted package bytes fails with PackageError, nothing else --------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_blob_decryption(data):
    with pytest.raises(PackageError):
        stream.decrypt_bytes(data, bytes(32), bytes(16), bytes(16))


@FUZZ
@given(json_values | st.fixed_dictionaries({"format": st.just(manifest.FORMAT), "version": st.just(1)},
                                           optional={"blobs": json_values, "index": json_values,
                                                     "package_id": st.text(max_size=40)}))
def test_fuzz_manifest_payload(doc):
    with pytest.raises(PackageError):
        manifest.parse_payload(json.dumps(doc).encode())


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_manifest_token(publisher, data):
    with pytest.raises(PackageError):
        manifest.verify(data, publisher[1])
    with pytest.raises(PackageError):
        manifest.parse_unverified(data)


@FUZZ
@given(json_values | st.fixed_dictionaries({"files": st.lists(st.fixed_dictionaries(
    {"path": st.text(max_size=12), "blob": st.text(max_size=4), "size": st.integers()}), max_size=4)}))
def test_fuzz_index(doc):
    try:
        entries = index.decode(json.dumps(doc).encode())
    except PackageError:
        return
    assert any(e.path == index.MODULE for e in entries)
