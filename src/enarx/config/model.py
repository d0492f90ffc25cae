"""The typed form of an Enarx.toml, code-accurate to Enarx's ``enarx-config`` crate plus documented extensions.

Extensions beyond Enarx: ``[[files]] kind = "dir"`` and ``kind = "secrets"``, ``[[secrets]]``, ``[limits]``,
and the TLS fields ``ca`` (connect) and ``client_ca`` (listen).

The records are immutable ``NamedTuple``s rather than dataclasses: this module is on the start-up path of
every ``enarx run`` (host and keep), and ``dataclasses`` costs several milliseconds to import.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

Protocol = Literal["tcp", "tls"]
StdioKind = Literal["stdin", "stdout", "stderr"]

DEFAULT_PORTS: dict[str, int] = {"tcp": 80, "tls": 443}


class NullFile(NamedTuple):
    """Reads give EOF, writes are swallowed."""

    name: str = "null"
    kind: Literal["null"] = "null"


class StdioFile(NamedTuple):
    """The host's stdin, stdout or stderr (the host sees this data: it is not protected)."""

    kind: StdioKind
    name: str


class ListenFile(NamedTuple):
    """A socket bound before the workload starts; the workload accepts on it."""

    name: str
    prot: Protocol
    addr: str = "::"
    port: int = 80
    client_ca: str | None = None  # extension: PEM bundle; only clients with a cert from it are served
    kind: Literal["listen"] = "listen"


class ConnectFile(NamedTuple):
    """A connection opened before the workload starts."""

    host: str
    prot: Protocol
    name: str
    port: int = 80
    ca: str | None = None  # extension: PEM bundle trusted besides the system roots
    kind: Literal["connect"] = "connect"


class DirFile(NamedTuple):
    """Extension: a host directory preopened for the workload. The host can read and change it."""

    path: str
    name: str
    writable: bool = False
    kind: Literal["dir"] = "dir"


class SecretsFile(NamedTuple):
    """Extension: the read-only directory holding the package's ``[[secrets]]``, one file each."""

    name: str = "/run/secrets"  # the guest path
    kind: Literal["secrets"] = "secrets"


FileEntry = NullFile | StdioFile | ListenFile | ConnectFile | DirFile | SecretsFile


class Secret(NamedTuple):
    """Extension: a file of the (encrypted) package the workload gets as a secret — in the secrets directory
    as ``name`` and, with ``env``, as that environment variable."""

    name: str
    path: str  # the package file holding it, relative to the package (the Enarx.toml's directory)
    env: str | None = None


class Limits(NamedTuple):
    """Extension: resource limits. ``None`` means unlimited."""

    memory: int | None = None  # bytes of linear memory
    timeout: float | None = None  # seconds of wall time


class Config(NamedTuple):
    """An Enarx.toml in effect. ``source`` is the file it came from (for messages), or ``None``."""

    files: tuple[FileEntry, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    steward: str | None = None
    limits: Limits = Limits()
    source: str | None = None
    secrets: tuple[Secret, ...] = ()

    def fd_names(self) -> list[str]:
        return [f.name for f in self.files]

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data (what ``enarx config check`` prints)."""
        out: dict[str, Any] = {}
        if self.steward is not None:
            out["steward"] = self.steward
        out["args"] = list(self.args)
        out["env"] = dict(self.env)
        files = []
        for entry in self.files:
            item: dict[str, Any] = {"kind": entry.kind}
            for key, value in entry._asdict().items():
                if key != "kind" and value is not None:
                    item[key] = value
            files.append(item)
        out["files"] = files
        if self.secrets:
            out["secrets"] = [{k: v for k, v in s._asdict().items() if v is not None} for s in self.secrets]
        limits: dict[str, Any] = {}
        if self.limits.memory is not None:
            limits["memory"] = self.limits.memory
        if self.limits.timeout is not None:
            limits["timeout"] = self.limits.timeout
        if limits:
            out["limits"] = limits
        return out


def default_config() -> Config:
    """What Enarx uses for a package without an Enarx.toml: stdin, stdout and stderr, nothing else."""
    return Config(
        files=(
            StdioFile("stdin", "stdin"),
            StdioFile("stdout", "stdout"),
            StdioFile("stderr", "stderr"),
        )
    )
