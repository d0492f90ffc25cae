"""Turn a launch request (package + host additions) into the WASI view the workload gets.

Two semantics, as the docs promise:

* **Plain WASI** (no Enarx.toml): argv = [module name, *args]; environment = exactly the ``--env``
  pairs; stdio relayed; ``--dir`` preopens.
* **Enarx** (an Enarx.toml in effect): argv = ["main.wasm", *config.args, *args]; environment =
  FD_COUNT, FD_NAMES, then the config's env, then ``--env``; file descriptors in ``[[files]]`` order.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from enarx.config import (
    Config,
    ConnectFile,
    DirFile,
    ListenFile,
    NullFile,
    SecretsFile,
    StdioFile,
    parse_config,
)
from enarx.errors import ConfigError
from enarx.protocol import LaunchRequest

_STD_FD = {"stdin": 0, "stdout": 1, "stderr": 2}
SECRETS_PENDING = ""  # the host path of the secrets directory, until the secrets stage has made it


class Preopen(NamedTuple):
    host: str
    guest: str
    writable: bool


class WorkloadPlan:
    """What the workload will see. A plain class (not a dataclass): this is on every keep's start-up path."""

    def __init__(self, argv: list[str], env: list[tuple[str, str]], *, stdin: bool = True, stdout: bool = True,
                 stderr: bool = True, preopens: list[Preopen] | None = None, memory_limit: int | None = None,
                 timeout: float | None = None, config: Config | None = None):
        self.argv = argv
        self.env = env
        self.stdin = stdin  # relay the host's stdin
        self.stdout = stdout
        self.stderr = stderr
        self.preopens: list[Preopen] = preopens or []
        self.memory_limit = memory_limit
        self.timeout = timeout
        self.config = config
        self.sockets: list[tuple[int, ListenFile | ConnectFile]] = []  # (guest fd, entry)

    @property
    def needs_identity(self) -> bool:
        return any(entry.prot == "tls" for _fd, entry in self.sockets)


def plan_workload(req: LaunchRequest) -> WorkloadPlan:
    """Raises :class:`ConfigError` for an Enarx.toml this runtime cannot honour."""
    if req.config_toml is None:
        return WorkloadPlan(
            argv=[req.module_name, *req.args],
            env=list(req.env),
            preopens=[Preopen(h, g, w) for h, g, w in req.dirs],
            memory_limit=req.memory_limit,
            timeout=req.timeout,
        )

    source = req.config_source or "Enarx.toml"
    # Relative paths in the file (dir preopens, CA bundles) are relative to the file, as on the host.
    base_dir = os.path.dirname(req.config_source) if req.config_source else None
    config = parse_config(req.config_toml, source=source, base_dir=base_dir)
    plan = WorkloadPlan(
        argv=["main.wasm", *config.args, *req.args],
        env=[("FD_COUNT", str(len(config.files))), ("FD_NAMES", ":".join(config.fd_names()))],
        stdin=False,
        stdout=False,
        stderr=False,
        memory_limit=req.memory_limit if req.memory_limit is not None else config.limits.memory,
        timeout=req.timeout if req.timeout is not None else config.limits.timeout,
        config=config,
    )
    plan.env.extend(config.env)
    plan.env.extend(req.env)

    for fd, entry in enumerate(config.files):
        where = f"{source}: files[{fd}]"
        if fd < 3:
            if isinstance(entry, NullFile):
                continue
            if isinstance(entry, StdioFile) and _STD_FD[entry.kind] == fd:
                setattr(plan, entry.kind, True)
                continue
            raise ConfigError(
                f"{where}: kind {entry.kind!r} cannot be fd {fd} in this runtime; "
                "fds 0-2 take stdin, stdout, stderr (or null) in that order"
            )
        if isinstance(entry, (DirFile, SecretsFile)):
            if plan.sockets:
                raise ConfigError(
                    f"{where}: `{entry.kind}` entries must come before `listen`/`connect` entries (workloads find "
                    "their directories by scanning fds upwards from 3 until the first non-directory)")
            if isinstance(entry, SecretsFile):
                plan.preopens.append(Preopen(SECRETS_PENDING, entry.name, False))
            else:
                plan.preopens.append(Preopen(entry.path, entry.name, entry.writable))
        elif isinstance(entry, (ListenFile, ConnectFile)):
            plan.sockets.append((fd, entry))
        else:
            raise ConfigError(f"{where}: kind {entry.kind!r} is only supported as fd 0, 1 or 2")
    if plan.sockets and req.dirs:
        raise ConfigError("--dir cannot be combined with listen/connect sockets (their fd numbers are fixed by "
                          f"{source}); add a `dir` entry before the sockets instead")
    plan.preopens.extend(Preopen(h, g, w) for h, g, w in req.dirs)
    return plan
