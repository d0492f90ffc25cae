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

from enarx.config import Config, ConnectFile, ListenFile, SecretsFile, parse_config
from enarx.config.validate import fd_layout
from enarx.protocol import LaunchRequest

SECRETS_PENDING = ""  # the host path of the secrets directory, until the secrets stage has made it


class Preopen(NamedTuple):
    host: str
    guest: str
    writable: bool
    root: str | None = None  # a package's directory: ``host`` must be inside it (see enarx.config.confine)


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
    config = parse_config(req.config_toml, source=source, base_dir=base_dir, package_root=req.package_dir)
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

    layout = fd_layout(config, extra_dirs=len(req.dirs))
    for kind in layout.stdio:
        setattr(plan, kind, True)
    plan.preopens.extend(Preopen(SECRETS_PENDING, d.name, False) if isinstance(d, SecretsFile)
                         else Preopen(d.path, d.name, d.writable, req.package_dir) for d in layout.dirs)
    plan.sockets.extend(layout.sockets)
    plan.preopens.extend(Preopen(h, g, w) for h, g, w in req.dirs)
    return plan
