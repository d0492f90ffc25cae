"""What an Enarx.toml must satisfy to run, beyond parsing: the one check ``enarx run`` and ``enarx config
check`` both call (so that ``config check`` accepts exactly what ``run`` accepts).

:func:`fd_layout` holds the file-descriptor rules of this runtime; the keep applies it again to the text
it is sent (it does not trust the host's verdict). :func:`check_config` adds what the host can check
before it starts a keep: the directories and CA bundles exist (and stay inside a package), ``--dir``
fits the layout. It returns warnings for things that run but are probably not meant.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from enarx.config.confine import open_dir
from enarx.config.model import Config, ConnectFile, DirFile, ListenFile, NullFile, SecretsFile, StdioFile
from enarx.errors import ConfigError

STD_FDS = {"stdin": 0, "stdout": 1, "stderr": 2}


class Layout(NamedTuple):
    """Where each entry goes: relayed stdio streams, preopened directories, sockets (with their fd)."""

    stdio: frozenset[str]
    dirs: tuple[DirFile | SecretsFile, ...]  # preopened directories, in fd order (the secrets one too)
    sockets: tuple[tuple[int, ListenFile | ConnectFile], ...]


def fd_layout(config: Config, *, extra_dirs: int = 0) -> Layout:
    """The fd rules: 0-2 are stdin, stdout, stderr (or null) in order; ``dir`` entries before sockets;
    ``--dir`` (``extra_dirs``) not with sockets. Raises :class:`ConfigError` naming the entry."""
    source = config.source or "Enarx.toml"
    stdio: set[str] = set()
    dirs: list[DirFile | SecretsFile] = []
    sockets: list[tuple[int, ListenFile | ConnectFile]] = []
    for fd, entry in enumerate(config.files):
        where = f"{source}: files[{fd}]"
        if fd < 3:
            if isinstance(entry, NullFile):
                continue
            if isinstance(entry, StdioFile) and STD_FDS[entry.kind] == fd:
                stdio.add(entry.kind)
                continue
            raise ConfigError(
                f"{where}: kind {entry.kind!r} cannot be fd {fd} in this runtime; "
                "fds 0-2 take stdin, stdout, stderr (or null) in that order"
            )
        if isinstance(entry, (DirFile, SecretsFile)):
            if sockets:
                raise ConfigError(
                    f"{where}: `{entry.kind}` entries must come before `listen`/`connect` entries (workloads find "
                    "their directories by scanning fds upwards from 3 until the first non-directory)")
            dirs.append(entry)
        elif isinstance(entry, (ListenFile, ConnectFile)):
            sockets.append((fd, entry))
        else:
            raise ConfigError(f"{where}: kind {entry.kind!r} is only supported as fd 0, 1 or 2")
    if sockets and extra_dirs:
        raise ConfigError("--dir cannot be combined with listen/connect sockets (their fd numbers are fixed by "
                          f"{source}); add a `dir` entry before the sockets instead")
    return Layout(frozenset(stdio), tuple(dirs), tuple(sockets))


def check_config(config: Config, *, extra_dirs: int = 0, package_root: str | None = None) -> list[str]:
    """Every check ``enarx run`` makes on an Enarx.toml before starting a keep; returns warnings.

    ``extra_dirs`` counts the ``--dir`` options; ``package_root`` is set for a package's own Enarx.toml
    (its directories must then stay inside the package, checked by opening them as the keep will).
    """
    source = config.source or "Enarx.toml"
    fd_layout(config, extra_dirs=extra_dirs)
    for fd, entry in enumerate(config.files):
        if isinstance(entry, DirFile):
            os.close(open_dir(entry.path, package_root, f"{source}: files[{fd}] ({entry.name})"))
        elif isinstance(entry, (ListenFile, ConnectFile)):
            key, path = ("client_ca", entry.client_ca) if isinstance(entry, ListenFile) else ("ca", entry.ca)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{source}: files[{fd}].{key}: {path!r} does not exist or is not a file")
    warnings = []
    if not config.files:
        warnings.append(f"{source}: no [[files]]: the workload gets no stdin, stdout or stderr (nor any other "
                        "file descriptor); `enarx config init` writes a template with them")
    return warnings
