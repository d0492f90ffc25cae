"""``enarx deploy`` on the host: turn PACKAGE into what the keep is launched with.

* ``file://PATH`` — a local ``.wasm`` or package directory, run as ``enarx run PATH`` would.
* ``HOST/USER/REPO:TAG`` (or a registry tag URL) — the host reads the tag entry only (the tree's digests,
  with the user's token for a private repository) and binds it into the launch; the keep fetches the tree.
* any other ``https://`` URL — the keep fetches it (a ``.wasm`` served as ``application/wasm``).
"""

from __future__ import annotations

import ssl
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from enarx.errors import EnarxError


class RemotePackage(NamedTuple):
    url: str  # what the keep fetches
    root: str | None  # the canonical tag entry bound into the launch (None: an unbound .wasm URL)
    public: bool = False  # anyone may read it: its compiled module may go into the host's module cache


def resolve(package: str, context: ssl.SSLContext, token: str | None) -> str | RemotePackage:
    """A local path (``file://``) or the remote package the keep fetches."""
    from enarx.drawbridge.client import RegistryClient, tag_url
    from enarx.drawbridge.names import SlugError, parse_slug

    parts = urlsplit(package)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise EnarxError(f"{package!r}: a file:// URL names a path on this machine (file:///path)")
        return unquote(parts.path)
    if parts.scheme == "http":
        raise EnarxError(f"refusing to deploy {package!r} over plain http: use https")
    if parts.scheme == "https":
        segments = parts.path.rstrip("/").split("/")
        if len(segments) >= 7 and segments[1] == "api" and segments[-2] == "_tag":
            slug = parse_slug(f"{parts.netloc}/{segments[-4]}/{segments[-3]}:{segments[-1]}", repo=True, tag=True)
        else:
            return RemotePackage(package, None)
    elif parts.scheme:
        raise EnarxError(f"{package!r}: unsupported scheme {parts.scheme!r} (file://, https:// or HOST/USER/REPO:TAG)")
    else:
        try:
            slug = parse_slug(package, repo=True, tag=True)
        except SlugError as exc:
            raise EnarxError(f"{exc} (or a file:// or https:// URL)") from None
    from enarx.drawbridge.client import RegistryError

    url = tag_url(slug.host, slug.user, slug.repo or "", slug.tag or "")
    with RegistryClient(slug.host, context) as anonymous:  # the token only when the repository needs it
        try:
            body, _root = anonymous.tag_entry(slug)
            return RemotePackage(url, body.decode(), public=True)
        except RegistryError as exc:
            if exc.status not in (401, 403) or token is None:
                raise
    with RegistryClient(slug.host, context, token) as client:
        body, _root = client.tag_entry(slug)
    return RemotePackage(url, body.decode())
