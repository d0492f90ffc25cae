"""A package's paths stay inside the package: checked when the Enarx.toml is parsed and again when opened.

A package (a directory with ``main.wasm`` and its own ``Enarx.toml``) may be downloaded: its ``dir``
entries and CA bundles must not reach the user's other files. At parse time a path must be relative
without ``..``; at open time the directory is opened one component at a time from the package root with
``O_NOFOLLOW``, so a symbolic link anywhere on the way — even one swapped in after the check — is
refused, and the workload is handed the directory that was checked (``/proc/self/fd/N``), not a path
that could change in between. An Enarx.toml the user names with ``--wasmcfgfile`` is the user's own and
may name any host path; a host directory outside a package is given with ``--dir``.
"""

from __future__ import annotations

import errno
import os

from enarx.errors import ConfigError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def check_relative(path: str, where: str) -> None:
    """Parse time: a package path must be relative and must not climb out (no ``..`` component)."""
    parts = path.replace("\\", "/").split("/")
    if os.path.isabs(path) or ".." in parts:
        raise ConfigError(f"{where}: {path!r} leaves the package; a package's paths must be relative and "
                          "inside it (give a host directory outside it with --dir)")


def open_dir(host: str, root: str | None, where: str) -> int:
    """Open the directory ``host`` (inside ``root`` when given); returns an fd the caller closes."""
    if root is None:
        try:
            return os.open(host, _DIR_FLAGS)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot open directory {host!r}: {_reason(exc)}") from None
    relative = os.path.relpath(host, root)
    parts = [p for p in relative.split(os.sep) if p not in ("", ".")]
    if os.path.isabs(relative) or ".." in parts:
        raise ConfigError(f"{where}: {host!r} is outside the package {root!r}")
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot open the package directory {root!r}: {_reason(exc)}") from None
    walked = root
    for part in parts:
        walked = os.path.join(walked, part)
        try:
            child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(walked):
                raise ConfigError(f"{where}: {walked!r} is a symbolic link; a package's directories must "
                                  "not go through links (give a host directory with --dir)") from None
            raise ConfigError(f"{where}: cannot open directory {walked!r}: {_reason(exc)}") from None
        os.close(fd)
        fd = child
    return fd


def opened_path(fd: int) -> str:
    """A path that names exactly the open directory ``fd`` (for APIs that take a path)."""
    return f"/proc/self/fd/{fd}"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "it does not exist"
    if exc.errno == errno.ENOTDIR:
        return "not a directory"
    return (exc.strerror or str(exc)).lower()
