"""The Drawbridge registry as an ASGI application (Starlette).

Routes (all under ``/api/v<semver>/``; a request for a newer API than the server's is answered 501):

=====================================  ================  ===============================================
path                                   methods           who
=====================================  ================  ===============================================
``{user}``                             HEAD GET PUT      the owner's token (read/write:drawbridge_users)
``{user}/{repo}``                      HEAD GET PUT      the owner's token (…:drawbridge_repositories)
``{user}/{repo}/_tag``                 GET               anyone if public, else the owner's token
``{user}/{repo}/_tag/{tag}``           HEAD GET PUT DEL  read: public / owner / a keep by rule;
``{user}/{repo}/_tag/{tag}/tree[/…]``  HEAD GET PUT      write: the owner's token (write:drawbridge_tags)
=====================================  ================  ===============================================

DELETE of a tag (beyond Enarx: the owner's token, write:drawbridge_tags) forgets a *pending* tag, one whose tree
never completed, so that a broken publish can be redone; a complete tag is write-once (409). Plus ``/health`` (any
method, 200) and ``/metrics`` (Prometheus). Every refusal is an RFC 9457 problem body (:mod:`enarx.web.problem`)
with a stable ``reason``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from enarx.drawbridge import SERVER_API_VERSION, names
from enarx.drawbridge.auth import Anonymous, KeepClient, OidcVerifier, Principal, TokenUser
from enarx.drawbridge.content import (
    CT_ENTRY,
    CT_JWS,
    MAX_DIRECTORY,
    MAX_ENTRY,
    ContentError,
    Entry,
    Hasher,
    canonical,
    digests_of,
    format_content_digest,
    hash_blocks,
    parse_canonical,
    parse_content_digest,
    parse_directory,
    parse_json,
    same_digests,
)
from enarx.drawbridge.repoconfig import RepoConfig, keep_checks, public_checks
from enarx.drawbridge.store import Conflict, QuotaExceeded, Store, StoreError
from enarx.drawbridge.store.base import Facts, Node, check_quota
from enarx.web.problem import HttpProblem, read_body
from enarx.web.problem import problem as web_problem

PROBLEM_BASE = "urn:enarx:drawbridge:problem:"
MAX_JSON = 1 << 20  # user records and repository configs
MAX_OBJECT = 4 << 30
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")  # RFC 6838, lowercase
SMALL_OBJECT = 1 << 20  # uploads up to this size are read whole; larger ones stream through worker threads

log = logging.getLogger("enarx.drawbridge")


def problem(status: int, reason: str, detail: str, **extra: Any) -> Response:
    title = "Not Implemented" if status == 501 else None
    return web_problem(status, reason, detail, base=PROBLEM_BASE, title=title, **extra)


@dataclass
class Target:
    """What a request path names."""

    user: str
    repo: str | None = None
    tags: bool = False
    tag: str | None = None
    path: str | None = None  # tree path ("" = root); None = not a tree request
    facts: Facts = field(default_factory=Facts)  # what the store knows about it, read once per request


def parse_target(rest: str) -> Target:
    """``v0.1.0/alice/hello/_tag/0.1.0/tree/a/b`` → Target; raises HttpProblem for bad versions/names."""
    version, _, tail = rest.partition("/")
    requested = names.semver_tuple(version[1:]) if version.startswith("v") else None
    if requested is None:
        raise HttpProblem(400, "bad-version", f"API version {version!r} is not v<semver> (e.g. v0.1.0)")
    ours = names.semver_tuple(SERVER_API_VERSION)
    assert ours is not None
    if requested[0] > ours[0] or (requested[0] == ours[0] == 0 and requested[1] > ours[1]):
        raise HttpProblem(501, "unsupported-version", f"unsupported API version {version} (this server speaks "
                          f"up to v{SERVER_API_VERSION})")
    parts = tail.rstrip("/").split("/") if tail.strip("/") else []
    not_found = HttpProblem(404, "no-route", f"Route /api/{rest} not found")
    if not parts:
        raise not_found
    if not names.is_user(parts[0]):
        raise HttpProblem(400, "bad-name", f"user name {parts[0][:80]!r} must be 1-64 letters or digits")
    target = Target(parts[0])
    if len(parts) == 1:
        return target
    if not names.is_repo(parts[1]):
        raise HttpProblem(400, "bad-name", f"repository name {parts[1][:80]!r} must be letters, digits or '-'")
    target.repo = parts[1]
    if len(parts) == 2:
        return target
    if parts[2] != "_tag":
        raise not_found
    if len(parts) == 3:
        target.tags = True
        return target
    if not names.is_tag(parts[3]):
        raise HttpProblem(400, "bad-name", f"tag {parts[3][:80]!r} is not a semantic version")
    target.tag = parts[3]
    if len(parts) == 4:
        return target
    if parts[4] != "tree":
        raise not_found
    path = "/".join(parts[5:])
    if names.split_path(path) is None:
        raise HttpProblem(400, "bad-name", f"tree path {path[:200]!r} has a component that is not allowed")
    target.path = path
    return target


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("drawbridge_requests", "Requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.bytes = Counter("drawbridge_object_bytes", "Object bytes stored and served", ["direction"],
                             registry=self.registry)


class Registry:
    """The request handlers over one store and one token verifier (both thread-safe)."""

    def __init__(self, store: Store, oidc: OidcVerifier | None, quota: int | None = None):
        self.store = store
        self.oidc = oidc
        self.quota = quota  # bytes each user's tags may hold (None: no limit)

    # -- who ----------------------------------------------------------------------------------------
    def principal(self, request: Request) -> Principal:
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise HttpProblem(401, "bad-token", "Authorization must be `Bearer <token>`")
            if self.oidc is None:
                raise HttpProblem(401, "no-oidc", "this registry was started without --oidc-issuer: it accepts "
                                  "no tokens")
            return self.oidc.verify(token.strip())
        tls = request.scope.get("extensions", {}).get("tls", {})
        if tls.get("client_cert_der"):
            return KeepClient(tls.get("claims"), tls.get("serial", ""))
        return Anonymous()

    @staticmethod
    def token(who: Principal, level: str, context: str) -> TokenUser:
        """A token with ``level:context``: 401 without a token, 403 for a keep or a missing scope."""
        if isinstance(who, KeepClient):
            raise HttpProblem(403, "keep-not-allowed", "a keep certificate grants no access here (keeps only "
                              "read the tags and trees of repositories whose keep policy they satisfy)")
        if not isinstance(who, TokenUser):
            raise HttpProblem(401, "no-token", "a bearer token is required (log in with `enarx user login`)",
                              headers={"WWW-Authenticate": 'Bearer realm="drawbridge"'})
        if not who.may(level, context):
            raise HttpProblem(403, "missing-scope", f"token lacks the scope {level}:{context}")
        return who

    def owner(self, who: Principal, target: Target, level: str, context: str) -> TokenUser:
        """The owner's token with ``level:context``; 404 for an unknown user, 403 for another user."""
        who = self.token(who, level, context)
        user = target.user
        record = target.facts.user
        if record is None:
            raise HttpProblem(404, "no-user", f"user {user} does not exist")
        subject = parse_json(record, "user record").get("subject")
        if subject != who.subject:
            raise HttpProblem(403, "not-owner", f"you are logged in as {who.subject!r}, and not authorized for "
                              f"user {user}")
        return who

    @staticmethod
    def repo_config(target: Target) -> RepoConfig:
        config = target.facts.repo
        if config is None:
            raise HttpProblem(404, "no-repo", f"repository {target.user}/{target.repo} does not exist")
        return RepoConfig.parse(parse_json(config, "repository config"))

    def reader(self, who: Principal, target: Target, config: RepoConfig, tag_root: Entry | None) -> None:
        """May ``who`` read this repository's tags (and, for a tag request, that tag's tree: ``tag_root`` is
        its stored root entry, None when there is no such tag)?"""
        if config.public:
            return
        if isinstance(who, KeepClient) and target.tag is not None:
            failed = keep_checks(config.keeps, who.claims, tag_root)
            if failed:
                log.info("keep %s refused reading %s/%s:%s: %s", who.serial, target.user, target.repo, target.tag,
                         "; ".join(f"{c.name} (expected {c.expected}, actual {c.actual})" for c in failed))
                raise HttpProblem(403, "keep-refused", "the keep does not satisfy the repository's keep policy: "
                                  + "; ".join(c.detail or c.name for c in failed), checks=public_checks(failed))
            return
        if isinstance(who, Anonymous):
            raise HttpProblem(401, "no-token", f"{target.user}/{target.repo} is private: a bearer token is required",
                              headers={"WWW-Authenticate": 'Bearer realm="drawbridge"'})
        self.owner(who, target, "read", "drawbridge_tags")

    # -- handlers -----------------------------------------------------------------------------------
    async def user(self, request: Request, who: Principal, target: Target) -> Response:
        if request.method == "PUT":
            token = self.token(who, "write", "drawbridge_users")
            body = await read_body(request, MAX_JSON)
            record = parse_json(body, "user record")
            if not isinstance(record, dict) or set(record) != {"subject"} or not isinstance(record["subject"], str):
                raise HttpProblem(400, "bad-record", 'a user record is exactly {"subject": "<token sub>"}')
            if record["subject"] != token.subject:
                raise HttpProblem(403, "not-owner", f"the record's subject {record['subject']!r} is not the token's "
                                  f"subject {token.subject!r}")
            await run_in_threadpool(self.store.put_user, target.user, canonical(record))
            return Response(b"", status_code=201)
        self.owner(who, target, "read", "drawbridge_users")
        return _json_response(request, target.facts.user or b"", "application/json")

    async def repo(self, request: Request, who: Principal, target: Target) -> Response:
        assert target.repo is not None
        if request.method == "PUT":
            self.owner(who, target, "write", "drawbridge_repositories")
            body = await read_body(request, MAX_JSON)
            config = RepoConfig.parse(parse_json(body, "repository config"))
            await run_in_threadpool(self.store.put_repo, target.user, target.repo, config.encode())
            return Response(b"", status_code=201)
        self.owner(who, target, "read", "drawbridge_repositories")
        config = self.repo_config(target)
        return _json_response(request, config.encode(), "application/json")

    async def tags(self, request: Request, who: Principal, target: Target) -> Response:
        assert target.repo is not None
        config = self.repo_config(target)
        self.reader(who, target, config, None)
        tags = await run_in_threadpool(self.store.list_tags, target.user, target.repo)
        return _json_response(request, canonical(tags), "application/json")

    async def tag(self, request: Request, who: Principal, target: Target) -> Response:
        assert target.repo is not None and target.tag is not None
        config = self.repo_config(target)
        if request.method == "PUT":
            self.owner(who, target, "write", "drawbridge_tags")
            return await self.put_tag(request, target)
        if request.method == "DELETE":
            self.owner(who, target, "write", "drawbridge_tags")
            if not await run_in_threadpool(self.store.delete_pending_tag, target.user, target.repo, target.tag):
                raise HttpProblem(404, "no-tag", f"tag {target.user}/{target.repo}:{target.tag} does not exist")
            return Response(b"", status_code=204)
        state = target.facts.tag
        root = Entry.from_json(parse_json(state.entry, "tag entry")) if state is not None else None
        self.reader(who, target, config, root)
        if state is None:
            raise HttpProblem(404, "no-tag", f"tag {target.user}/{target.repo}:{target.tag} does not exist")
        if not state.complete:
            raise HttpProblem(404, "tag-pending", f"tag {target.user}/{target.repo}:{target.tag} is still being "
                              f"published ({state.missing} tree nodes missing)")
        return _json_response(request, state.entry, CT_ENTRY)

    async def put_tag(self, request: Request, target: Target) -> Response:
        assert target.repo is not None and target.tag is not None
        ctype = _content_type(request)
        if ctype == CT_JWS:
            raise HttpProblem(415, "signed-tag", "signed tags are not supported; upload the unsigned entry")
        if ctype != CT_ENTRY:
            raise HttpProblem(415, "content-type", f"a tag entry is {CT_ENTRY}, not {ctype or '(none)'}")
        declared = _declared_digests(request)
        body = await read_body(request, MAX_ENTRY)
        _check_length(request, len(body))
        if not same_digests(declared, digests_of(body)):
            raise HttpProblem(400, "digest-mismatch", "Content digest mismatch: the tag entry does not match its "
                              "Content-Digest")
        root = Entry.from_json(parse_canonical(body, "tag entry"), "tag entry")
        check_storable(root, "")
        created = await run_in_threadpool(self.store.put_tag, target.user, target.repo, target.tag, body, root)
        if created:
            return Response(b"", status_code=201)
        return _json_response(request, canonical({"status": "pending"}), "application/json")

    async def node(self, request: Request, who: Principal, target: Target) -> Response:
        assert target.repo is not None and target.tag is not None and target.path is not None
        config = self.repo_config(target)
        state = target.facts.tag
        if request.method == "PUT":
            self.owner(who, target, "write", "drawbridge_tags")
            if state is None:
                raise HttpProblem(404, "no-tag", f"tag {target.tag} does not exist: upload its entry first")
            if state.complete:
                raise HttpProblem(409, "exists", f"tag {target.tag} is published completely: its tree is immutable")
            return await self.put_node(request, target)
        root = Entry.from_json(parse_json(state.entry, "tag entry")) if state is not None else None
        self.reader(who, target, config, root)
        if state is None:
            raise HttpProblem(404, "no-tag", f"tag {target.user}/{target.repo}:{target.tag} does not exist")
        if not state.complete:  # only the owner may look into a pending tag (to resume publishing it)
            try:
                self.owner(who, target, "read", "drawbridge_tags")
            except HttpProblem:
                raise HttpProblem(404, "tag-pending", f"tag {target.tag} is still being published") from None
        node = target.facts.node
        if node is None:
            raise HttpProblem(404, "no-node", f"no tree node {target.path or '/'!r} in tag {target.tag}")
        return self.stream(request, node)

    def stream(self, request: Request, node: Node) -> Response:
        headers = {"Content-Digest": node.entry.content_digest(), "Content-Length": str(node.entry.length)}
        if request.method == "HEAD":
            return Response(b"", headers=headers, media_type=node.entry.type)
        metrics: _Metrics = request.app.state.metrics
        metrics.bytes.labels("out").inc(node.entry.length)

        async def body() -> Any:
            try:
                async for chunk in iterate_in_threadpool(self.store.read(node)):
                    yield chunk
            except StoreError as exc:
                log.error("%s", exc)  # the response is cut short: the client sees an incomplete object
                raise

        return StreamingResponse(body(), headers=headers, media_type=node.entry.type)

    async def put_node(self, request: Request, target: Target) -> Response:
        assert target.repo is not None and target.tag is not None and target.path is not None
        expected = target.facts.expected
        if expected is None:
            if target.facts.node is not None:
                raise Conflict("already exists")
            raise HttpProblem(404, "not-in-tree", f"no stored directory of tag {target.tag} names "
                              f"{target.path or '/'!r}: upload its parent first")
        declared = _declared_digests(request)
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise HttpProblem(411, "no-length", "Content-Length is required")
        if int(length) != expected.length:
            raise HttpProblem(400, "length-mismatch", f"Content length mismatch, expected: {expected.length} (the "
                              "entry its parent gives it)")
        ctype = _content_type(request)
        if ctype != expected.type:
            raise HttpProblem(400, "type-mismatch", f"Content-Type {ctype or '(none)'} is not {expected.type} (the "
                              "entry its parent gives it)")
        if expected.length > MAX_OBJECT:
            raise HttpProblem(413, "too-large", f"objects are limited to {MAX_OBJECT} bytes")
        if "sha-256" not in declared:
            raise HttpProblem(400, "no-digest", "a tree node's Content-Digest must name sha-256 (its content address)")
        if self.quota is not None:  # before the body is read; the store checks again as it counts the node
            used = await run_in_threadpool(self.store.usage, target.user)
            try:
                check_quota(target.user, used, expected.length, self.quota)
            except QuotaExceeded as exc:
                raise HttpProblem(413, "quota-exceeded", str(exc)) from None
        if expected.length <= SMALL_OBJECT:  # read whole and stored with one trip to a worker thread
            body = await _read_exactly(request, expected.length)
            entry = Entry.of(body, ctype)
            _check_upload(target, declared, expected, entry)
            await run_in_threadpool(self._store_small, target, expected, body)
            return Response(b"", status_code=201)
        spool = await run_in_threadpool(self.store.new_spool)
        try:
            hasher = await _receive(request, spool, expected.length)
            if hasher.length != expected.length:
                raise HttpProblem(400, "length-mismatch", f"Content length mismatch, expected: {expected.length}, "
                                  f"received {hasher.length}")
            _check_upload(target, declared, expected, Entry(hasher.digests(), hasher.length, ctype))
            children = None
            if expected.is_directory:
                children = await run_in_threadpool(_read_directory, spool.path)
                check_children(target.path, children)
            await run_in_threadpool(self.store.put_node, target.user, target.repo, target.tag, target.path,
                                    expected, spool, children, self.quota)
        finally:
            await run_in_threadpool(spool.discard)
        request.app.state.metrics.bytes.labels("in").inc(expected.length)
        return Response(b"", status_code=201)


    def _store_small(self, target: Target, expected: Entry, body: bytes) -> None:
        assert target.repo is not None and target.tag is not None and target.path is not None
        children = parse_directory(body, "directory") if expected.is_directory else None
        if children is not None:
            check_children(target.path, children)
        spool = self.store.new_spool()
        try:
            spool.write(body)
            spool.finish()
            self.store.put_node(target.user, target.repo, target.tag, target.path, expected, spool, children,
                                self.quota)
        finally:
            spool.discard()


def check_children(path: str, children: dict[str, Entry]) -> None:
    """Every entry of a directory about to be stored can be uploaded in turn (else 400), so that a tag is never
    left pending forever for want of a node the server would refuse."""
    for name, entry in children.items():
        check_storable(entry, f"{path}/{name}" if path else name)


def check_storable(entry: Entry, path: str) -> None:
    """The node ``entry`` describes at ``path`` is one this server accepts: not too deep, not too large, of a
    media type a request can name (``Content-Type`` is compared lowercase, parameters dropped)."""
    if names.split_path(path) is None:
        raise HttpProblem(400, "too-deep", f"{path[:200]!r} is deeper than {names.MAX_DEPTH} levels (or badly named): "
                          "it could never be uploaded")
    limit = MAX_DIRECTORY if entry.is_directory else MAX_OBJECT
    if entry.length > limit:
        raise HttpProblem(400, "too-large", f"{path or 'the tree root'!r} is {entry.length} bytes; "
                          f"{'directories' if entry.is_directory else 'objects'} are limited to {limit} bytes")
    if MEDIA_TYPE.fullmatch(entry.type) is None:
        raise HttpProblem(400, "bad-type", f"{path or 'the tree root'!r} has type {entry.type[:100]!r}: a node's type "
                          "must be a lowercase media type without parameters (it is sent as its Content-Type)")


def _check_upload(target: Target, declared: dict[str, bytes], expected: Entry, entry: Entry) -> None:
    """The received bytes match every digest their Content-Digest names (SHA-256 always among them) and the
    entry their parent gives them: its length, type and all four digests (``entry`` holds all four, computed
    from the bytes received)."""
    if entry.length != expected.length:
        raise HttpProblem(400, "length-mismatch", f"Content length mismatch, expected: {expected.length}, "
                          f"received {entry.length}")
    if not same_digests(declared, entry.digests):
        raise HttpProblem(400, "digest-mismatch", "Content digest mismatch")
    if entry.type != expected.type or not same_digests(entry.digests, expected.digests):
        raise HttpProblem(400, "parent-mismatch", f"{target.path or 'the tree root'} does not match the entry "
                          "its parent directory (or the tag) gives it")


async def _read_exactly(request: Request, length: int) -> bytes:
    """A body of at most ``length`` bytes (a longer one is a length mismatch, not a 413)."""
    try:
        return await read_body(request, length)
    except HttpProblem as exc:
        if exc.status != 413:
            raise
        raise HttpProblem(400, "length-mismatch", f"Content length mismatch, expected: {length}") from None


def _read_directory(path: str) -> dict[str, Entry]:
    with open(path, "rb") as fh:
        return parse_directory(fh.read(), "directory")


async def _receive(request: Request, spool: Any, limit: int) -> Hasher:
    """Stream the body into ``spool`` while computing all four digests on worker threads (:func:`hash_blocks`),
    so that receiving, hashing and writing overlap. All four, whatever the uploader's Content-Digest names:
    the parent's entry binds all four (a TDX keep's binding is the SHA-384), so all four are checked."""
    import queue
    import threading

    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=256)
    outcome: dict[str, Any] = {}

    def chunks() -> Any:
        while (chunk := blocks.get()) is not None:
            yield chunk

    def work() -> None:
        try:
            outcome["hasher"] = hash_blocks(chunks(), spool.write)
            spool.finish()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the handler
            outcome["error"] = exc
            while blocks.get() is not None:  # drain so the receiving side never blocks
                pass

    worker = threading.Thread(target=work, name="drawbridge-upload", daemon=True)
    worker.start()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HttpProblem(400, "length-mismatch", f"Content length mismatch, expected: {limit}")
            if chunk:
                await _put(blocks, chunk)
    finally:
        await _put(blocks, None)
        await run_in_threadpool(worker.join)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["hasher"]


async def _put(blocks: Any, item: bytes | None) -> None:
    import queue

    while True:
        try:
            blocks.put_nowait(item)
            return
        except queue.Full:
            await asyncio.sleep(0.001)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _declared_digests(request: Request) -> dict[str, bytes]:
    return parse_content_digest(request.headers.getlist("content-digest"))


def _check_length(request: Request, actual: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != actual:
        raise HttpProblem(400, "length-mismatch", f"Content length mismatch, expected: {declared}")


def _json_response(request: Request, body: bytes, media_type: str) -> Response:
    headers = {"Content-Digest": format_content_digest(digests_of(body)), "Content-Length": str(len(body))}
    return Response(b"" if request.method == "HEAD" else body, headers=headers, media_type=media_type)


ROUTE_METHODS = {"user": ("HEAD", "GET", "PUT"), "repo": ("HEAD", "GET", "PUT"), "tags": ("GET",),
                 "tag": ("HEAD", "GET", "PUT", "DELETE"), "node": ("HEAD", "GET", "PUT")}


def create_app(store: Store, oidc: OidcVerifier | None = None, quota: int | None = None) -> Starlette:
    registry = Registry(store, oidc, quota)
    metrics = _Metrics()

    async def api(request: Request) -> Response:
        route = "unknown"
        try:
            target = parse_target(request.path_params["rest"])
            route = ("node" if target.path is not None else "tag" if target.tag else "tags" if target.tags
                     else "repo" if target.repo else "user")
            if request.method not in ROUTE_METHODS[route]:
                raise HttpProblem(405, "method", f"{request.method} is not allowed here",
                                  headers={"Allow": ", ".join(ROUTE_METHODS[route])})
            who = registry.principal(request)
            target.facts = await run_in_threadpool(store.lookup, target.user, target.repo, target.tag, target.path)
            response = await getattr(registry, route)(request, who, target)
        except HttpProblem as exc:
            response = problem(exc.status, exc.reason, exc.detail, headers=exc.headers, **exc.extra)
        except ContentError as exc:
            response = problem(413 if exc.reason == "too-large" else 400, exc.reason, str(exc))
        except Conflict as exc:
            response = problem(409, "exists", str(exc) or "already exists")
        except QuotaExceeded as exc:
            response = problem(413, "quota-exceeded", str(exc))
        except ClientDisconnect:
            response = problem(400, "disconnected", "the client went away before its request was complete")
        except StoreError as exc:
            log.error("store error: %s", exc)
            response = problem(503, "store", "the registry's store is unavailable")
        except Exception:
            log.exception("internal error on %s %s", request.method, request.url.path)
            response = problem(500, "internal", "internal error")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response

    async def health(request: Request) -> Response:
        return Response(b"", status_code=200)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request) -> Response:
        return problem(404, "no-route", f"Route {request.url.path} not found")

    every = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]
    app = Starlette(routes=[
        Route("/health", health, methods=every),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/api/{rest:path}", api, methods=every),
        Route("/{rest:path}", not_found, methods=every),
    ])
    app.state.metrics = metrics
    app.state.registry = registry
    return app
