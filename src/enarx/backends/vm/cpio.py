"""A reproducible initramfs: the ``newc`` cpio format with every varying field fixed.

Entries are written in sorted path order with mtime 0, uid/gid 0 and inode numbers counted from 1, so the
same files give the same bytes on any machine and at any time (the kernel ignores mtimes and inodes when it
unpacks an initramfs, except to join hard links — we write none).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from typing import BinaryIO, NamedTuple

TRAILER = "TRAILER!!!"


class Entry(NamedTuple):
    path: str  # without a leading slash
    mode: int  # including the file type bits
    data: bytes = b""  # file content, or a symlink's target
    rdev: tuple[int, int] = (0, 0)  # device nodes: (major, minor)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | mode)


def file(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | mode, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, mode: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | mode, b"", (major, minor))


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """The entries plus a directory entry for every parent they need, sorted by path (parents first)."""
    by_path = {e.path.strip("/"): e._replace(path=e.path.strip("/")) for e in entries}
    for path in list(by_path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            by_path.setdefault("/".join(parts[:i]), directory("/".join(parts[:i])))
    return [by_path[p] for p in sorted(by_path)]


def write(out: BinaryIO, entries: Iterable[Entry]) -> None:
    """Write ``entries`` (already in their final order) and the trailer."""
    for ino, entry in enumerate(entries, start=1):
        _write_one(out, ino, entry)
    _write_one(out, 0, Entry(TRAILER, 0))


def _write_one(out: BinaryIO, ino: int, entry: Entry) -> None:
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink if entry.path != TRAILER else 1, 0, len(entry.data), 0, 0,
              entry.rdev[0], entry.rdev[1], len(name), 0)
    header = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
    out.write(header + name)
    out.write(b"\0" * (-(len(header) + len(name)) % 4))
    out.write(entry.data)
    out.write(b"\0" * (-len(entry.data) % 4))
