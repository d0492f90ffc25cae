"""Name rules (users, repositories, tags, tree paths) and the ``[host/]user/repo[:tag]`` slug."""

from __future__ import annotations

import re
from typing import NamedTuple

from enarx.errors import EnarxError

USER = re.compile(r"[A-Za-z0-9]{1,64}")
REPO = re.compile(r"[A-Za-z0-9-]{1,64}")
ENTRY = re.compile(r"[A-Za-z0-9._:-]{1,255}")
# semver.org's grammar: MAJOR.MINOR.PATCH[-pre][+build], no leading zeros in numeric identifiers
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
MAX_DEPTH = 32


class SlugError(EnarxError):
    """A name that breaks the registry's rules."""


def is_user(name: str) -> bool:
    return USER.fullmatch(name) is not None


def is_repo(name: str) -> bool:
    return REPO.fullmatch(name) is not None


def is_tag(name: str) -> bool:
    return len(name) <= 128 and SEMVER.fullmatch(name) is not None


def is_entry_name(name: str) -> bool:
    return ENTRY.fullmatch(name) is not None and name not in (".", "..")


def semver_tuple(version: str) -> tuple[int, int, int] | None:
    match = SEMVER.fullmatch(version)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def split_path(path: str) -> list[str] | None:
    """``a/b/c`` → ``["a", "b", "c"]``; ``""`` → ``[]``; None when a component breaks the rules."""
    if path == "":
        return []
    parts = path.split("/")
    if len(parts) > MAX_DEPTH or not all(is_entry_name(p) for p in parts):
        return None
    return parts


class Slug(NamedTuple):
    """``host/user/repo:tag`` (host may carry ``:port``; tag and repo optional by command)."""

    host: str
    user: str
    repo: str | None = None
    tag: str | None = None

    def __str__(self) -> str:
        text = self.user + (f"/{self.repo}" if self.repo else "")
        return text + (f":{self.tag}" if self.tag else "")


def parse_slug(text: str, *, repo: bool, tag: bool, default_host: str | None = None) -> Slug:
    """Parse as Enarx does: the tag after the last ``:`` of the last path segment, then repo and user from
    the right; whatever precedes is the host. ``repo``/``tag`` say whether the command needs them."""
    want = "HOST/USER" + ("/REPO" if repo else "") + (":TAG" if tag else "")
    rest, tag_name = text, None
    if tag:
        head, sep, tail = text.rpartition(":")
        if not sep or "/" in tail:
            raise SlugError(f"{text!r}: expected {want}")
        rest, tag_name = head, tail
    parts = rest.split("/")
    need = 2 if repo else 1
    if len(parts) < need + 1 and default_host is None:
        raise SlugError(f"{text!r}: expected {want} (the registry host comes first)")
    names = parts[-need:]
    host = "/".join(parts[:-need]) or default_host or ""
    user_name = names[0]
    repo_name = names[1] if repo else None
    if not host or "/" in host:
        raise SlugError(f"{text!r}: expected {want}")
    if not is_user(user_name):
        raise SlugError(f"{text!r}: user name {user_name!r} must be 1-64 letters or digits")
    if repo_name is not None and not is_repo(repo_name):
        raise SlugError(f"{text!r}: repository name {repo_name!r} must be 1-64 letters, digits or '-'")
    if tag_name is not None and not is_tag(tag_name):
        raise SlugError(f"{text!r}: tag {tag_name!r} is not a semantic version like 0.1.0")
    return Slug(host, user_name, repo_name, tag_name)
