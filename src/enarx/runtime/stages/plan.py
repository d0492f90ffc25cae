"""Stage: interpret the package (Enarx.toml text + host additions) into the workload's WASI view."""

from __future__ import annotations

from enarx.errors import ConfigError
from enarx.runtime.launch import Launch, config_failure
from enarx.runtime.plan import plan_workload


def plan(launch: Launch) -> None:
    """Parse the Enarx.toml again inside the keep (the host is not trusted to have done it)."""
    try:
        launch.plan = plan_workload(launch.request)
    except ConfigError as exc:
        raise config_failure(launch, str(exc)) from None
