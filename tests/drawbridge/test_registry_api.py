"""The registry's HTTP API against real server processes, on SQLite and on PostgreSQL: who may do what
(the access matrix), content checks (digests, lengths, canonical JSON, parent entries), the version gate."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _fixtures import Drawbridge, cli, issuer, pki, postgres, store_kwargs
from _keeps import claims, keep_context

from conftest import example
from enarx.cabundle import client_context
from enarx.drawbridge.client import RegistryClient
from enarx.drawbridge.content import (
    CT_ENTRY,
    CT_OCTETS,
    Entry,
    canonical,
    format_content_digest,
)
from enarx.drawbridge.names import Slug
from enarx.drawbridge.tree import build_tree
from enarx.steward.issuer import CertificateAuthority

API = "/api/v0.1.0"


class Registry:
    """One running server with alice's public and private repositories, bob, and every kind of caller."""

    def __init__(self, server: Drawbridge, pki, issuer, steward_ca: CertificateAuthority, work: Path):
        self.server = server
        self.steward_ca = steward_ca
        self.host = server.host
        self.base = f"https://{self.host}{API}"
        self.ca = pki.ca_pem
        self.contexts: dict[str, ssl.SSLContext] = {}
        now = int(time.time())
        self.tokens = {
            "owner": issuer.mint("alice-sub"),
            "other": issuer.mint("bob-sub", alg="RS256"),
            "expired": issuer.mint("alice-sub", exp=now - 3600),
            "wrong-audience": issuer.mint("alice-sub", aud="https://elsewhere/"),
            "wrong-issuer": issuer.mint("alice-sub", iss="http://127.0.0.1:1/"),
            "missing-scope": issuer.mint("alice-sub", scope="openid profile"),
        }
        self.owner = self.client("owner")
        self.owner.register_user(Slug(self.host, "alice"), "alice-sub")
        self.client("other").register_user(Slug(self.host, "bob"), "bob-sub")
        self.owner.register_repo(Slug(self.host, "alice", "pub"), {"public": True})
        self.owner.register_repo(Slug(self.host, "alice", "priv"), {
            "public": False, "keeps": {"policy": {"tees": ["sev-snp"]}, "allow_insecure": False}})
        package = work / "pkg"
        (package / "data").mkdir(parents=True)
        (package / "main.wasm").write_bytes(example("c", "hello").read_bytes())
        (package / "data" / "secret.txt").write_bytes(b"private bytes")
        self.tree = build_tree(package)
        for repo in ("pub", "priv"):
            assert self.owner.publish(Slug(self.host, "alice", repo, "1.0.0"), self.tree) == "published"
        # a pending tag whose tree is one 10-byte file, for node uploads
        self.pending_file = b"0123456789"
        self.put_tag("priv", "2.0.0", Entry.of(self.pending_file, CT_OCTETS))
        root_sha256 = self.tree[0].entry.digests["sha-256"].hex()
        self.contexts.update({
            "keep": keep_context(steward_ca, work, "keep", claims(root_sha256), self.ca),
            "other-ca-keep": keep_context(CertificateAuthority.generate("Other CA"), work, "other", claims(root_sha256),
                                          self.ca),
        })

    def client(self, who: str) -> RegistryClient:
        return RegistryClient(self.host, client_context(str(self.ca)), self.tokens.get(who))

    def http(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}
        return httpx.Client(verify=self.contexts.get(who) or client_context(str(self.ca)), headers=headers,
                            timeout=30)

    def put_tag(self, repo: str, tag: str, root: Entry, who: str = "owner") -> httpx.Response:
        body = root.encode()
        with self.http(who) as http:
            return http.put(f"{self.base}/alice/{repo}/_tag/{tag}", content=body, headers={
                "Content-Type": CT_ENTRY, "Content-Digest": format_content_digest(Entry.of(body, CT_ENTRY).digests)})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, pki, issuer, tmp_path_factory) -> Any:
    work = tmp_path_factory.mktemp("registry")
    steward_ca = CertificateAuthority.generate("Test Steward")
    keep_ca = work / "steward-ca.pem"
    keep_ca.write_bytes(steward_ca.pem)
    server = Drawbridge(pki, issuer, keep_ca=keep_ca, **store_kwargs(request.param, work, request))
    try:
        yield Registry(server, pki, issuer, steward_ca, work)
    finally:
        server.stop()


PRINCIPALS = ["anonymous", "owner", "other", "keep", "other-ca-keep", "expired", "wrong-audience", "wrong-issuer",
              "missing-scope"]
BAD_TOKENS = {"expired": "token-expired", "wrong-audience": "bad-token", "wrong-issuer": "bad-token"}

# route → expected status for anonymous, owner, other user, keep (satisfying the keep policy), missing scope.
# Bad tokens are 401 everywhere; a certificate from another CA never gets past the TLS handshake.
MATRIX: dict[str, tuple[int, int, int, int, int]] = {
    "GET user":           (401, 200, 403, 403, 403),
    "PUT user":           (401, 201, 201, 403, 403),
    "GET repo":           (401, 200, 403, 403, 403),
    "PUT repo":           (401, 201, 403, 403, 403),
    "GET public tags":    (200, 200, 200, 200, 200),
    "GET private tags":   (401, 200, 403, 403, 403),
    "GET public tag":     (200, 200, 200, 200, 200),
    "GET private tag":    (401, 200, 403, 200, 403),
    "PUT tag":            (401, 201, 403, 403, 403),
    "GET public tree":    (200, 200, 200, 200, 200),
    "GET private tree":   (401, 200, 403, 200, 403),
    "GET private file":   (401, 200, 403, 200, 403),
    "PUT node":           (401, 201, 403, 403, 403),
    "DELETE pending tag": (401, 204, 403, 403, 403),
    "DELETE complete tag": (401, 409, 403, 403, 403),
}
COLUMN = {"anonymous": 0, "owner": 1, "other": 2, "keep": 3, "missing-scope": 4}


def _request(reg: Registry, http: httpx.Client, route: str, who: str) -> httpx.Response:
    base = reg.base
    unique = f"{who.replace('-', '')}{time.monotonic_ns()}"
    if route == "GET user":
        return http.get(f"{base}/alice")
    if route == "PUT user":
        subject = {"owner": "alice-sub", "other": "bob-sub"}.get(who, "alice-sub")
        return http.put(f"{base}/{unique}", content=canonical({"subject": subject}))
    if route == "GET repo":
        return http.get(f"{base}/alice/priv")
    if route == "PUT repo":
        return http.put(f"{base}/alice/r{unique}", content=canonical({"public": True}))
    if route.startswith("GET") and "tags" in route:
        return http.get(f"{base}/alice/{'pub' if 'public' in route else 'priv'}/_tag")
    if route.startswith("GET") and route.endswith(" tag"):
        return http.get(f"{base}/alice/{'pub' if 'public' in route else 'priv'}/_tag/1.0.0")
    if route == "PUT tag":
        body = Entry.of(unique.encode(), CT_OCTETS).encode()
        return http.put(f"{base}/alice/priv/_tag/3.0.{time.monotonic_ns() % 10**9}", content=body, headers={
            "Content-Type": CT_ENTRY, "Content-Digest": format_content_digest(Entry.of(body, CT_ENTRY).digests)})
    if route.endswith("tree"):
        return http.get(f"{base}/alice/{'pub' if 'public' in route else 'priv'}/_tag/1.0.0/tree")
    if route == "GET private file":
        return http.get(f"{base}/alice/priv/_tag/1.0.0/tree/data/secret.txt")
    if route == "PUT node":
        entry = Entry.of(reg.pending_file, CT_OCTETS)
        return http.put(f"{base}/alice/priv/_tag/2.0.0/tree", content=reg.pending_file, headers={
            "Content-Type": CT_OCTETS, "Content-Digest": entry.content_digest()})
    if route == "DELETE pending tag":
        tag = f"4.0.{time.monotonic_ns() % 10**9}"
        assert reg.put_tag("priv", tag, Entry.of(unique.encode(), CT_OCTETS)).status_code == 201
        return http.delete(f"{base}/alice/priv/_tag/{tag}")
    if route == "DELETE complete tag":
        return http.delete(f"{base}/alice/priv/_tag/1.0.0")
    raise AssertionError(route)


@pytest.mark.parametrize("who", PRINCIPALS)
def test_access_matrix(registry: Registry, who: str) -> None:
    wrong = []
    with registry.http(who) as http:
        for route, row in MATRIX.items():
            try:
                response = _request(registry, http, route, who)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if who != "other-ca-keep":
                    wrong.append(f"{route}: {exc}")
                continue
            if who == "other-ca-keep":
                wrong.append(f"{route}: a certificate from another CA got an HTTP answer {response.status_code}")
                continue
            expected = 401 if who in BAD_TOKENS else row[COLUMN[who]]
            if response.status_code != expected:
                wrong.append(f"{route}: {response.status_code} (expected {expected}) {response.text[:200]}")
                continue
            if expected >= 400:
                doc = response.json()
                assert response.headers["content-type"] == "application/problem+json"
                assert doc["status"] == expected and doc["reason"] and doc["detail"]
                if who in BAD_TOKENS:
                    assert doc["reason"] == BAD_TOKENS[who], (route, doc)
    assert not wrong, "\n".join(wrong)


def test_private_file_reaches_owner_and_keep_intact(registry: Registry) -> None:
    for who in ("owner", "keep"):
        with registry.http(who) as http:
            response = http.get(f"{registry.base}/alice/priv/_tag/1.0.0/tree/data/secret.txt")
        assert response.content == b"private bytes"
        assert response.headers["content-digest"] == Entry.of(b"private bytes", CT_OCTETS).content_digest()


@pytest.mark.parametrize("case", ["wrong-tee", "wrong-tag", "insecure", "no-claims", "debug", "expired"])
def test_keep_refused_by_rule(registry: Registry, case: str, tmp_path: Path) -> None:
    """A keep certificate alone grants nothing: its claims must satisfy the repository's keep policy and
    name the tag being read."""
    root = registry.tree[0].entry.digests["sha-256"].hex()
    doc: dict[str, Any] | None = {
        "wrong-tee": claims(root, tee="tdx"),
        "wrong-tag": claims("00" * 32),
        "insecure": claims(root, insecure=True),
        "no-claims": None,
        "debug": claims(root, debug=True),
        "expired": claims(root),
    }[case]
    context = keep_context(registry.steward_ca, tmp_path, case, doc, registry.ca, expired=case == "expired")
    with httpx.Client(verify=context, timeout=30) as http:
        try:
            response = http.get(f"{registry.base}/alice/priv/_tag/1.0.0/tree/data/secret.txt")
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            assert case == "expired"  # an expired certificate fails the TLS handshake
            return
    assert case != "expired"
    assert response.status_code == 403
    body = response.json()
    assert body["reason"] == "keep-refused"
    failed = {c["name"] for c in body["checks"]}
    expected = {"wrong-tee": "policy.tee", "wrong-tag": "drawbridge.host_data", "insecure": "drawbridge.insecure",
                "no-claims": "drawbridge.claims", "debug": "policy.debug"}[case]
    assert expected in failed, body
    assert b"private bytes" not in response.content


def test_private_repository_without_a_keep_rule_admits_no_keep(registry: Registry) -> None:
    slug = Slug(registry.host, "alice", f"norule{time.monotonic_ns()}", "1.0.0")
    registry.owner.register_repo(slug, {"public": False})
    registry.owner.publish(slug, registry.tree)
    with registry.http("keep") as http:
        response = http.get(f"{registry.base}/alice/{slug.repo}/_tag/1.0.0/tree/data/secret.txt")
    assert response.status_code == 403
    assert [c["name"] for c in response.json()["checks"]] == ["drawbridge.keep-rule"]


def test_pending_tag_deleted_and_published_anew(registry: Registry, tmp_path: Path) -> None:
    """A publish that broke midway (its entry and root directory stored, a file never) is deleted by its owner and
    the tag published again with other content; the deleted tree's nodes are gone with it."""
    slug = Slug(registry.host, "alice", "pub", f"5.0.{time.monotonic_ns() % 10**9}")
    tag_url = f"{registry.base}/alice/pub/_tag/{slug.tag}"
    root = registry.tree[0]
    assert registry.put_tag("pub", slug.tag, root.entry).status_code == 201
    with registry.http("owner") as http:
        stored = http.put(f"{tag_url}/tree", content=root.content, headers={
            "Content-Type": root.entry.type, "Content-Digest": root.entry.content_digest()})
        assert stored.status_code == 201
        assert http.head(f"{tag_url}/tree").status_code == 200
    other = build_tree(_package(tmp_path, b"other bytes"))
    refused = registry.put_tag("pub", slug.tag, other[0].entry)
    assert refused.status_code == 409 and "enarx package delete" in refused.json()["detail"]

    registry.owner.delete_pending_tag(slug)
    with registry.http("owner") as http:
        assert http.head(f"{tag_url}/tree").status_code == 404
        assert http.delete(tag_url).json()["reason"] == "no-tag"
    assert registry.owner.publish(slug, other) == "published"
    _, served = registry.owner.tag_entry(slug)
    assert served.matches(other[0].entry)
    with registry.http("owner") as http:
        assert http.get(f"{tag_url}/tree/data/secret.txt").content == b"other bytes"
        refused = http.delete(tag_url)
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == "exists"


def test_package_delete_command(registry: Registry) -> None:
    """`enarx package delete` removes a pending tag; on a complete tag it is one line naming the refusal."""
    tag = f"6.0.{time.monotonic_ns() % 10**9}"
    assert registry.put_tag("priv", tag, Entry.of(b"never uploaded", CT_OCTETS)).status_code == 201
    token = registry.tokens["owner"]
    deleted = cli("package", "delete", f"{registry.host}/alice/priv:{tag}", token=token, ca=registry.ca)
    assert deleted.returncode == 0, deleted.stderr
    assert f"Deleted the pending tag alice/priv:{tag}" in deleted.stderr.decode()
    with registry.http("owner") as http:
        assert http.get(f"{registry.base}/alice/priv/_tag/{tag}").json()["reason"] == "no-tag"
    refused = cli("package", "delete", f"{registry.host}/alice/priv:1.0.0", token=token, ca=registry.ca)
    assert refused.returncode == 1
    assert refused.stderr.decode().strip().splitlines() == [(
        f"Error: {registry.host} refused deleting the pending tag alice/priv:1.0.0: tag 1.0.0 is "
        "published completely: it is immutable and cannot be deleted (409)")]


def _package(where: Path, secret: bytes) -> Path:
    package = where / "pkg"
    (package / "data").mkdir(parents=True)
    (package / "main.wasm").write_bytes(example("c", "hello").read_bytes())
    (package / "data" / "secret.txt").write_bytes(secret)
    return package
