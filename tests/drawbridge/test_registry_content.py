"""What the registry stores is exactly what was described: digests, lengths, types and canonical JSON are
checked on every upload, a node must match the entry its parent gives it, a tag is served only once its
whole tree is stored, objects are checked again when read, and the API version is gated. On SQLite and
on PostgreSQL."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from _fixtures import Drawbridge, issuer, pki, postgres, store_kwargs

from enarx.cabundle import client_context
from enarx.drawbridge.client import RegistryClient
from enarx.drawbridge.content import (
    CT_DIRECTORY,
    CT_ENTRY,
    CT_OCTETS,
    Entry,
    encode_directory,
    format_content_digest,
)
from enarx.drawbridge.names import Slug


class Api:
    def __init__(self, server: Drawbridge, pki, token: str):
        self.server = server
        self.host = server.host
        self.base = f"https://{server.host}/api/v0.1.0/alice/repo"
        self.http = httpx.Client(verify=client_context(str(pki.ca_pem)), timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
        self.client = RegistryClient(server.host, client_context(str(pki.ca_pem)), token)
        self.ca = pki.ca_pem
        self.tags = 0

    def new_tag(self, root: Entry) -> str:
        self.tags += 1
        tag = f"0.{self.tags}.0"
        body = root.encode()
        response = self.put(f"_tag/{tag}", body, CT_ENTRY)
        assert response.status_code == 201, response.text
        return tag

    def put(self, path: str, body: bytes, ctype: str, **headers: str) -> httpx.Response:
        all_headers = {"Content-Type": ctype, "Content-Digest": Entry.of(body, ctype).content_digest()}
        all_headers.update(headers)
        return self.http.put(f"{self.base}/{path}", content=body, headers=all_headers)

    def close(self) -> None:
        self.http.close()
        self.client.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, pki, issuer, tmp_path_factory) -> Any:
    server = Drawbridge(pki, issuer, **store_kwargs(request.param, tmp_path_factory.mktemp("content"), request))
    token = issuer.mint("alice-sub")
    client = RegistryClient(server.host, client_context(str(pki.ca_pem)), token)
    client.register_user(Slug(server.host, "alice"), "alice-sub")
    client.register_repo(Slug(server.host, "alice", "repo"), {"public": True})
    client.close()
    api = Api(server, pki, token)
    api.bob_token = issuer.mint("bob-sub")
    yield api
    api.close()
    server.stop()


def _problem(response: httpx.Response, status: int, reason: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc = response.json()
    assert doc["reason"] == reason, doc
    return doc


def test_file_digest_and_length_mismatches_are_400(api: Api) -> None:
    data = b"the real content"
    tag = api.new_tag(Entry.of(data, CT_OCTETS))
    other = Entry.of(b"something else!!", CT_OCTETS)  # same length, other digests
    _problem(api.put(f"_tag/{tag}/tree", data, CT_OCTETS, **{"Content-Digest": other.content_digest()}),
             400, "digest-mismatch")
    _problem(api.put(f"_tag/{tag}/tree", data, CT_OCTETS, **{"Content-Digest": ""}), 400, "no-digest")
    _problem(api.put(f"_tag/{tag}/tree", data + b"!", CT_OCTETS), 400, "length-mismatch")
    _problem(api.put(f"_tag/{tag}/tree", data, "application/wasm"), 400, "type-mismatch")
    # a consistent upload of other bytes: the header matches the body, but not the tag's entry
    _problem(api.put(f"_tag/{tag}/tree", b"something else!!", CT_OCTETS), 400, "parent-mismatch")
    # nothing of that was stored: the tag is still pending, then the right bytes complete it
    assert api.http.get(f"{api.base}/_tag/{tag}").json()["reason"] == "tag-pending"
    assert api.put(f"_tag/{tag}/tree", data, CT_OCTETS).status_code == 201
    response = api.http.get(f"{api.base}/_tag/{tag}/tree")
    assert response.content == data
    assert response.headers["content-digest"] == Entry.of(data, CT_OCTETS).content_digest()
    _problem(api.put(f"_tag/{tag}/tree", data, CT_OCTETS), 409, "exists")


def test_a_body_cut_short_stores_nothing(api: Api, pki) -> None:
    """A client that declares 1000 bytes, sends 10 and hangs up leaves nothing visible."""
    import socket

    data = b"x" * 1000
    tag = api.new_tag(Entry.of(data, CT_OCTETS))
    host, port = api.host.rsplit(":", 1)
    head = (f"PUT /api/v0.1.0/alice/repo/_tag/{tag}/tree HTTP/1.1\r\nHost: {api.host}\r\n"
            f"Authorization: {api.http.headers['authorization']}\r\nContent-Type: {CT_OCTETS}\r\n"
            f"Content-Digest: {Entry.of(data, CT_OCTETS).content_digest()}\r\nContent-Length: 1000\r\n\r\n")
    context = client_context(str(pki.ca_pem))
    with context.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host) as sock:
        sock.sendall(head.encode() + data[:10])
    assert api.http.head(f"{api.base}/_tag/{tag}/tree").status_code == 404
    assert api.put(f"_tag/{tag}/tree", data, CT_OCTETS).status_code == 201


def test_directory_must_be_canonical_and_children_match_it(api: Api) -> None:
    wasm = b"\0asm\x01\0\0\0"
    data = b"data file"
    sub = encode_directory({"f.txt": Entry.of(data, CT_OCTETS)})
    entries = {"main.wasm": Entry.of(wasm, "application/wasm"), "data": Entry.of(sub, CT_DIRECTORY)}
    root = encode_directory(entries)
    tag = api.new_tag(Entry.of(root, CT_DIRECTORY))
    pretty = json.dumps(json.loads(root), indent=1).encode()  # same JSON, not canonical
    assert api.put(f"_tag/{tag}/tree", pretty, CT_DIRECTORY).status_code == 400
    # a child before its parent directory is stored: not (yet) in the tree
    _problem(api.put(f"_tag/{tag}/tree/main.wasm", wasm, "application/wasm"), 404, "not-in-tree")
    assert api.put(f"_tag/{tag}/tree", root, CT_DIRECTORY).status_code == 201
    _problem(api.put(f"_tag/{tag}/tree/other.wasm", wasm, "application/wasm"), 404, "not-in-tree")
    _problem(api.put(f"_tag/{tag}/tree/main.wasm", wasm + b"\0", "application/wasm"), 400, "length-mismatch")
    assert api.put(f"_tag/{tag}/tree/main.wasm", wasm, "application/wasm").status_code == 201
    # the tag is not served (nor listed) until its last node is stored
    assert tag not in api.http.get(f"{api.base}/_tag").json()
    _problem(api.http.get(f"{api.base}/_tag/{tag}"), 404, "tag-pending")
    _problem(api.put(f"_tag/{tag}/tree/data", root, CT_DIRECTORY), 400, "length-mismatch")
    assert api.put(f"_tag/{tag}/tree/data", sub, CT_DIRECTORY).status_code == 201
    assert api.put(f"_tag/{tag}/tree/data/f.txt", data, CT_OCTETS).status_code == 201
    assert tag in api.http.get(f"{api.base}/_tag").json()
    assert api.http.get(f"{api.base}/_tag/{tag}/tree/data/f.txt").content == data


@pytest.mark.parametrize("mutate", ["whitespace", "unsorted", "bad-digest-size", "missing-algorithm", "bad-name"])
def test_malformed_tag_entries_and_directories_are_400(api: Api, mutate: str) -> None:
    entry = Entry.of(b"abc", CT_OCTETS).to_json()
    if mutate == "whitespace":
        body = json.dumps(entry, sort_keys=True).encode()
    elif mutate == "unsorted":
        body = json.dumps(dict(reversed(list(entry.items()))), separators=(",", ":")).encode()
    elif mutate == "bad-digest-size":
        entry["digest"]["sha-256"] = base64.b64encode(b"short").decode()
        body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    elif mutate == "missing-algorithm":
        del entry["digest"]["sha-512"]
        body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    else:  # a directory with a name that is not allowed, as the tree root
        directory = json.dumps({"../x": entry}, sort_keys=True, separators=(",", ":")).encode()
        tag = api.new_tag(Entry.of(directory, CT_DIRECTORY))
        _problem(api.put(f"_tag/{tag}/tree", directory, CT_DIRECTORY), 400, "bad-name")
        return
    response = api.put("_tag/9.9.9", body, CT_ENTRY)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] in ("not-canonical", "bad-digest", "bad-entry")


def test_tag_entry_must_match_its_content_digest(api: Api) -> None:
    body = Entry.of(b"abc", CT_OCTETS).encode()
    wrong = format_content_digest(Entry.of(body + b" ", CT_ENTRY).digests)
    _problem(api.put("_tag/8.8.8", body, CT_ENTRY, **{"Content-Digest": wrong}), 400, "digest-mismatch")
    _problem(api.put("_tag/8.8.8", body, "application/jose+json"), 415, "signed-tag")
    _problem(api.put("_tag/latest", body, CT_ENTRY), 400, "bad-name")


@pytest.mark.parametrize(("version", "status", "reason"), [
    ("v0.1.0", 200, None), ("v0.4.2", 200, None), ("v0.5.0", 501, "unsupported-version"),
    ("v1.0.0", 501, "unsupported-version"), ("v0.1", 400, "bad-version"), ("0.1.0", 400, "bad-version")])
def test_version_gate(api: Api, version: str, status: int, reason: str | None) -> None:
    response = api.http.get(f"https://{api.host}/api/{version}/alice/repo/_tag")
    assert response.status_code == status
    if reason:
        assert response.json()["reason"] == reason


def test_routes_health_metrics(api: Api) -> None:
    root = f"https://{api.host}"
    _problem(api.http.get(f"{root}/api/v0.1.0/alice/repo/_nope"), 404, "no-route")
    _problem(api.http.get(f"{root}/elsewhere"), 404, "no-route")
    response = api.http.delete(f"{root}/api/v0.1.0/alice/repo/_tag")
    _problem(response, 405, "method")
    assert response.headers["allow"] == "GET"
    for method in ("GET", "POST", "HEAD"):
        assert api.http.request(method, f"{root}/health").status_code == 200
    metrics = api.http.get(f"{root}/metrics").text
    assert 'drawbridge_requests_total{method="DELETE",route="tags",status="405"}' in metrics


def test_resumed_publish_skips_what_is_stored(api: Api, tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "data").mkdir(parents=True)
    (package / "main.wasm").write_bytes(b"\0asm\x01\0\0\0")
    for i in range(5):
        (package / "data" / f"{i}.bin").write_bytes(bytes([i]) * 1000)
    from enarx.drawbridge.tree import build_tree

    nodes = build_tree(package)
    slug = Slug(api.host, "alice", "repo", "5.0.0")
    # an interrupted publish: the tag entry and the first three nodes
    assert api.put("_tag/5.0.0", nodes[0].entry.encode(), CT_ENTRY).status_code == 201
    for node in nodes[:3]:
        body = node.content if node.content is not None else node.file.read_bytes()
        assert api.put(f"_tag/5.0.0/tree/{node.path}".rstrip("/"), body, node.entry.type).status_code == 201
    assert api.client.publish(slug, nodes) == "resumed"
    assert api.client.publish(slug, nodes) == "unchanged"
    tree = api.client.fetch_tree(f"https://{api.host}/api/v0.1.0/alice/repo/_tag/5.0.0")
    assert tree.files["data/3.bin"] == b"\x03" * 1000


def test_a_pending_tag_is_the_owners_alone(api: Api) -> None:
    """The owner sees what a pending tag has stored (to resume); anyone else sees nothing, even in a public
    repository."""
    child = Entry.of(b"pending-only", CT_OCTETS)
    directory = encode_directory({"a": child, "b": child})
    tag = api.new_tag(Entry.of(directory, CT_DIRECTORY))
    assert api.put(f"_tag/{tag}/tree", directory, CT_DIRECTORY).status_code == 201
    assert api.http.head(f"{api.base}/_tag/{tag}/tree").status_code == 200
    for headers in ({}, {"Authorization": f"Bearer {api.bob_token}"}):
        with httpx.Client(verify=client_context(str(api.ca)), headers=headers, timeout=30) as other:
            _problem(other.get(f"{api.base}/_tag/{tag}/tree"), 404, "tag-pending")
            _problem(other.get(f"{api.base}/_tag/{tag}"), 404, "tag-pending")



def test_a_directory_naming_a_node_that_could_never_be_uploaded_is_400(api: Api) -> None:
    """Every child of a directory is checked when the directory is stored: a tag can never be stuck pending for
    want of a node the server would refuse (too deep, too large, a type no Content-Type can name)."""
    from enarx.drawbridge.app import MAX_OBJECT
    from enarx.drawbridge.content import MAX_DIRECTORY
    from enarx.drawbridge.names import MAX_DEPTH

    leaf = Entry.of(b"deep", CT_OCTETS)
    levels = [encode_directory({"f": leaf})]  # levels[i] is stored at a path of MAX_DEPTH - i parts
    for _ in range(MAX_DEPTH):
        levels.append(encode_directory({"d": Entry.of(levels[-1], CT_DIRECTORY)}))
    levels.reverse()  # levels[depth]: the directory stored at "d/…/d" (depth parts)
    tag = api.new_tag(Entry.of(levels[0], CT_DIRECTORY))
    for depth in range(MAX_DEPTH):
        path = "/".join(["tree", *["d"] * depth])
        assert api.put(f"_tag/{tag}/{path}", levels[depth], CT_DIRECTORY).status_code == 201, depth
    deepest = "/".join(["tree", *["d"] * MAX_DEPTH])  # fine itself, but its child would be one level too deep
    doc = _problem(api.put(f"_tag/{tag}/{deepest}", levels[MAX_DEPTH], CT_DIRECTORY), 400, "too-deep")
    assert str(MAX_DEPTH) in doc["detail"]

    huge = Entry(leaf.digests, MAX_OBJECT + 1, CT_OCTETS)
    big_directory = Entry(leaf.digests, MAX_DIRECTORY + 1, CT_DIRECTORY)
    for child, reason in ((huge, "too-large"), (big_directory, "too-large"),
                          (Entry.of(b"x", "Text/Plain"), "bad-type"), (Entry.of(b"x", "text/plain; charset=utf-8"),
                                                                      "bad-type")):
        directory = encode_directory({"ok": leaf, "child": child})
        tag = api.new_tag(Entry.of(directory, CT_DIRECTORY))
        _problem(api.put(f"_tag/{tag}/tree", directory, CT_DIRECTORY), 400, reason)
    # the tag entry's own root, before anything is stored
    _problem(api.put("_tag/7.7.7", huge.encode(), CT_ENTRY), 400, "too-large")
    _problem(api.put("_tag/7.7.8", Entry.of(b"x", "Application/Wasm").encode(), CT_ENTRY), 400, "bad-type")
