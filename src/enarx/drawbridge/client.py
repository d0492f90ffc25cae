"""The registry client: every request and its refusal as one line, publishing (resumable), reading.

A refusal reads ``HOST refused publishing alice/hello:0.1.0: tag already exists (409)``: who refused,
what was being done, the server's reason, the status.
"""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import Callable, Iterator
from typing import Any, Self

import httpx

from enarx import __version__, cabundle
from enarx.drawbridge import API_VERSION
from enarx.drawbridge.content import (
    CT_DIRECTORY,
    CT_ENTRY,
    Entry,
    canonical,
    format_content_digest,
    parse_canonical,
    parse_content_digest,
    parse_directory,
)
from enarx.drawbridge.names import Slug
from enarx.drawbridge.tree import TreeNode
from enarx.errors import EnarxError

TIMEOUT = httpx.Timeout(60.0, connect=15.0)
UPLOAD_CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 4 << 20


class RegistryError(EnarxError):
    """The registry refused a request, or could not be reached. The message quotes what a server said, so it
    is made :func:`printable` here: whoever prints it gets one line no server can put escape sequences into."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(printable(message))
        self.status = status
        self.reason = reason


def printable(text: str) -> str:
    """``text`` on one line without control or format characters (terminal escapes, bidi overrides)."""
    import unicodedata

    return "".join(ch for ch in " ".join(text.split()) if unicodedata.category(ch)[0] != "C")


def tag_url(host: str, user: str, repo: str, tag: str) -> str:
    return f"https://{host}/api/v{API_VERSION}/{user}/{repo}/_tag/{tag}"


class RegistryClient:
    """One registry host. ``context`` is a verifying TLS client context (``cabundle.client_context``),
    optionally carrying a client certificate (a keep's)."""

    def __init__(self, host: str, context: ssl.SSLContext, token: str | None = None):
        self.host = host
        self.base = f"https://{host}/api/v{API_VERSION}"
        headers = {"User-Agent": f"enarx-drawbridge-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(verify=context, headers=headers, timeout=TIMEOUT, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, action: str, *, ok: tuple[int, ...] = (200, 201),
                **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, self.base + path, **kw)
        except httpx.ConnectError as exc:
            text = str(exc)
            if "CERTIFICATE_VERIFY_FAILED" in text:
                raise RegistryError(f"cannot verify the TLS certificate of {self.host} while {action}: trust its "
                                    "CA with --ca-bundle or ENARX_CA_BUNDLE") from None
            raise RegistryError(f"cannot reach the registry at {self.host} while {action}: "
                                f"{_unreachable_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise RegistryError(f"{self.host} failed while {action}: {exc}") from None
        if response.status_code not in ok:
            raise refusal(self.host, action, response)
        return response

    def get_json(self, path: str, action: str) -> Any:
        response = self.request("GET", path, action)
        check_body_digest(response, f"{self.host} answer to {action}")
        try:
            return response.json()
        except ValueError:
            raise RegistryError(f"{self.host} answered {action} with something that is not JSON") from None

    # -- users and repositories ---------------------------------------------------------------------
    def register_user(self, slug: Slug, subject: str) -> None:
        self.request("PUT", f"/{slug.user}", f"registering user {slug.user}", content=canonical({"subject": subject}),
                     headers={"Content-Type": "application/json"})

    def user_info(self, slug: Slug) -> Any:
        return self.get_json(f"/{slug.user}", f"reading user {slug.user}")

    def register_repo(self, slug: Slug, config: dict[str, Any]) -> None:
        self.request("PUT", f"/{slug.user}/{slug.repo}", f"registering repository {slug}",
                     content=canonical(config), headers={"Content-Type": "application/json"})

    def repo_info(self, slug: Slug) -> dict[str, Any]:
        config = self.get_json(f"/{slug.user}/{slug.repo}", f"reading repository {slug}")
        tags = self.get_json(f"/{slug.user}/{slug.repo}/_tag", f"listing the tags of {slug}")
        return {"config": config, "tags": tags}

    # -- tags ---------------------------------------------------------------------------------------
    def tag_entry(self, slug: Slug) -> tuple[bytes, Entry]:
        """The tag entry's exact bytes (checked against their Content-Digest) and the tree root it names."""
        path = f"/{slug.user}/{slug.repo}/_tag/{slug.tag}"
        response = self.request("GET", path, f"reading {slug}")
        check_body_digest(response, f"the tag entry of {slug}")
        try:
            return response.content, Entry.from_json(parse_canonical(response.content, "tag entry"))
        except ValueError as exc:
            raise RegistryError(f"{self.host} answered a malformed tag entry for {slug}: {exc}") from None

    def publish(self, slug: Slug, nodes: list[TreeNode], *, progress: bool | None = None) -> str:
        """Publish ``nodes`` (from :func:`~enarx.drawbridge.tree.build_tree`) as ``slug``'s tag. Resumable:
        run again after an interruption, stored nodes are skipped. Returns ``published``,
        ``resumed`` or ``unchanged`` (the tag already holds exactly this tree)."""
        action = f"publishing {slug}"
        root = nodes[0].entry
        body = root.encode()
        tag_path = f"/{slug.user}/{slug.repo}/_tag/{slug.tag}"
        response = self.request("PUT", tag_path, action, ok=(200, 201, 409), content=body,
                                headers={"Content-Type": CT_ENTRY, "Content-Digest": format_content_digest(
                                    Entry.of(body, CT_ENTRY).digests)})
        if response.status_code == 409:
            if self._published_identical(slug, body):
                return "unchanged"
            raise refusal(self.host, action, response)
        resuming = response.status_code == 200
        total = sum(n.length for n in nodes)
        show = sys.stderr.isatty() if progress is None else progress
        bar = _progress(total, f"publishing {slug}") if show and total >= PROGRESS_MIN_BYTES else None
        try:
            for level in _levels(nodes):  # a directory is stored before its entries; one level at a time
                _parallel(lambda node: self._put_node(slug, node, resuming, action, bar), level)
        finally:
            if bar is not None:
                bar.render_finish()
        return "resumed" if resuming else "published"

    def delete_pending_tag(self, slug: Slug) -> None:
        """Forget ``slug``'s tag while it is still pending (its tree incomplete); the server refuses (409) for a
        complete tag, which stays write-once."""
        self.request("DELETE", f"/{slug.user}/{slug.repo}/_tag/{slug.tag}", f"deleting the pending tag {slug}",
                     ok=(204,))

    def _published_identical(self, slug: Slug, body: bytes) -> bool:
        try:
            stored, _root = self.tag_entry(slug)
        except RegistryError:
            return False
        return stored == body

    def _put_node(self, slug: Slug, node: TreeNode, resuming: bool, action: str, bar: Any) -> None:
        path = f"/{slug.user}/{slug.repo}/_tag/{slug.tag}/tree" + (f"/{node.path}" if node.path else "")
        if resuming:
            head = self.request("HEAD", path, action, ok=(200, 404))
            if head.status_code == 200:
                if bar is not None:
                    bar.update(node.length)
                return
        # the content address is enough for the server to check the upload against its parent's entry
        headers = {"Content-Type": node.entry.type, "Content-Length": str(node.length),
                   "Content-Digest": format_content_digest({"sha-256": node.entry.digests["sha-256"]})}
        content: bytes | Iterator[bytes] = node.content if node.content is not None else _read_file(node, bar)
        response = self.request("PUT", path, action, ok=(201, 409), content=content, headers=headers)
        if response.status_code == 409 and _reason(response) != "exists":
            raise refusal(self.host, action, response)
        if bar is not None and node.content is not None:
            bar.update(node.length)

    # -- reading trees ------------------------------------------------------------------------------
    def fetch_tree(self, tag_url_: str, expected_root: Entry | None = None,
                   on_progress: Callable[[int], None] | None = None) -> FetchedTree:
        """GET a tag's entry and whole tree below ``tag_url_`` (a tag URL of this host), checking every
        object against the entry that names it; ``expected_root`` (the bound digest) must match the tag."""
        return fetch_tree(self.http, self.host, tag_url_, expected_root, on_progress)


class FetchedTree:
    """A fetched package: file path → bytes (a one-file tree is ``{"": bytes}``) and the root entry."""

    def __init__(self, root: Entry, files: dict[str, bytes], directories: list[str]):
        self.root = root
        self.files = files
        self.directories = directories


def fetch_tree(http: httpx.Client, host: str, url: str, expected_root: Entry | None,
               on_progress: Callable[[int], None] | None = None,
               on_file: Callable[[str, bytes], None] | None = None) -> FetchedTree:
    """The tag at ``url`` and every node of its tree; each object is checked against its parent's entry.
    ``on_file(path, content)`` hears of each file as soon as it is checked (the tree is fetched level by
    level, so a top-level file arrives before the files of subdirectories)."""
    action = f"reading {url}"
    response = _get(http, host, url, action)
    check_body_digest(response, "the tag entry")
    try:
        root = Entry.from_json(parse_canonical(response.content, "tag entry"))
    except ValueError as exc:
        raise RegistryError(f"{host} answered a malformed tag entry: {exc}") from None
    if expected_root is not None and not expected_root.matches(root):
        raise RegistryError(f"{host} answered a tag whose tree is not the one this keep was launched for "
                            "(digest mismatch)")
    files: dict[str, bytes] = {}
    directories: list[str] = []

    def get(item: tuple[str, Entry]) -> list[tuple[str, Entry]]:
        path, entry = item
        data = _get_checked(http, host, url + "/tree" + (f"/{path}" if path else ""), action, entry,
                            f"{host}: {path or 'tree root'}")
        if on_progress is not None:
            on_progress(len(data))
        if not entry.is_directory:
            files[path] = data
            if on_file is not None:
                on_file(path, data)
            return []
        directories.append(path)
        try:
            children = parse_directory(data, f"{path or 'tree root'}")
        except ValueError as exc:
            raise RegistryError(f"{host}: {exc}") from None
        return [(f"{path}/{name}" if path else name, child) for name, child in children.items()]

    level: list[tuple[str, Entry]] = [("", root)]
    while level:  # breadth first: each level's nodes are fetched in parallel
        level = [child for children in _parallel(get, level) for child in children]
    return FetchedTree(root, files, directories)


PARALLEL = 8


def _parallel(work: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``work`` over ``items`` on up to :data:`PARALLEL` connections; the first error is raised."""
    if len(items) <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(PARALLEL, len(items)), thread_name_prefix="drawbridge") as pool:
        return list(pool.map(work, items))


def _levels(nodes: list[TreeNode]) -> list[list[TreeNode]]:
    """Nodes grouped by depth (the root alone first)."""
    by_depth: dict[int, list[TreeNode]] = {}
    for node in nodes:
        by_depth.setdefault(node.path.count("/") + 1 if node.path else 0, []).append(node)
    return [by_depth[depth] for depth in sorted(by_depth)]


def _get(http: httpx.Client, host: str, url: str, action: str) -> httpx.Response:
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise RegistryError(f"cannot reach the registry at {host} while {action}: {_unreachable_reason(exc)}") from None
    if response.status_code != 200:
        raise refusal(host, action, response)
    return response


def _get_checked(http: httpx.Client, host: str, url: str, action: str, entry: Entry, where: str) -> bytes:
    """GET an object, checking it against ``entry`` while it downloads (all four digests and the length)."""
    from enarx.drawbridge.content import hash_blocks, same_digests

    blocks: list[bytes] = []
    try:
        with http.stream("GET", url) as response:
            if response.status_code != 200:
                response.read()
                raise refusal(host, action, response)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) != entry.length:
                raise RegistryError(f"{where}: the server announces {declared} bytes, expected {entry.length}")
            hasher = hash_blocks(response.iter_bytes(), blocks.append)
    except httpx.HTTPError as exc:
        raise RegistryError(f"cannot read {where} while {action}: {exc}") from None
    if hasher.length != entry.length:
        raise RegistryError(f"{where}: {hasher.length} bytes, expected {entry.length}")
    if not same_digests(entry.digests, hasher.digests()):
        raise RegistryError(f"{where}: content does not match its digest")
    return b"".join(blocks)


def _read_file(node: TreeNode, bar: Any) -> Iterator[bytes]:
    assert node.file is not None
    with open(node.file, "rb") as fh:
        while chunk := fh.read(UPLOAD_CHUNK):
            if bar is not None:
                bar.update(len(chunk))
            yield chunk


class _Progress:
    """click's progress bar, safe to update from the upload threads."""

    def __init__(self, total: int, label: str):
        import threading

        import click

        self.bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=False, show_percent=True)
        self.lock = threading.Lock()
        self.bar.render_progress()

    def update(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def render_finish(self) -> None:
        with self.lock:
            self.bar.render_finish()


def _progress(total: int, label: str) -> Any:
    return _Progress(total, label)


def check_body_digest(response: httpx.Response, what: str) -> None:
    """A JSON answer's Content-Digest (when given) must match its body."""
    values = response.headers.get_list("content-digest")
    if not values:
        return
    try:
        declared = parse_content_digest(values)
    except ValueError as exc:
        raise RegistryError(f"{what}: malformed Content-Digest: {exc}") from None
    from enarx.drawbridge.content import digests_of, same_digests

    if not same_digests(declared, digests_of(response.content)):
        raise RegistryError(f"{what}: the body does not match its Content-Digest")


def _reason(response: httpx.Response) -> str | None:
    try:
        doc = response.json()
    except ValueError:
        return None
    return doc.get("reason") if isinstance(doc, dict) else None


def refusal(host: str, action: str, response: httpx.Response) -> RegistryError:
    """``HOST refused ACTION: DETAIL (STATUS)`` from a problem+json (or any) answer."""
    detail = None
    reason = None
    try:
        doc = response.json()
        if isinstance(doc, dict):
            detail = doc.get("detail") or doc.get("title")
            reason = doc.get("reason")
    except (ValueError, json.JSONDecodeError):
        pass
    if not detail:
        detail = response.reason_phrase or "no reason given"
    detail = printable(str(detail))[:400]
    return RegistryError(f"{host} refused {action}: {detail} ({response.status_code})", response.status_code, reason)


__all__ = ["CT_DIRECTORY", "FetchedTree", "RegistryClient", "RegistryError", "fetch_tree", "refusal", "tag_url"]


def _unreachable_reason(exc: httpx.HTTPError) -> str:
    """Why the registry could not be reached; a refused connection says what to check."""
    if cabundle.refused(exc):
        return "connection refused; check that Drawbridge is running there and the HOST in HOST/USER/REPO"
    return str(exc)
