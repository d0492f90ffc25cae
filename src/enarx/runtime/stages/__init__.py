"""The keep's start-up as a list of stages, each with one job, run in order on one :class:`~enarx.runtime.launch.Launch`.

    plan → attest → fetch → [obtain] → open sockets → compile → configure WASI → instantiate   (SETUP)
    then run (:func:`~enarx.runtime.stages.execute.run_workload`) and report
    (:func:`~enarx.runtime.stages.execute.conclude`).

``SETUP`` is a plain tuple so that a keep can be given a different list: stages that need the keep's
attested identity — fetching the workload from a registry, obtaining secrets from a key broker — go right
after :func:`attest` (see :func:`with_stage`), and a VM guest prepends the stages that unpack what the host
sent with the package. Each stage may be called on its own in a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from enarx.runtime.fetch import fetch
from enarx.runtime.launch import Launch
from enarx.runtime.stages.attest import attest
from enarx.runtime.stages.instantiate import compile_module, configure_wasi, instantiate
from enarx.runtime.stages.plan import plan
from enarx.runtime.stages.resources import open_sockets

Stage = Callable[[Launch], None]

SETUP: tuple[Stage, ...] = (plan, attest, fetch, open_sockets, compile_module, configure_wasi, instantiate)


def with_stage(stages: Sequence[Stage], stage: Stage, *, after: Stage) -> tuple[Stage, ...]:
    """``stages`` with ``stage`` inserted right after ``after`` (e.g. a registry fetch after :func:`attest`)."""
    items = list(stages)
    items.insert(items.index(after) + 1, stage)
    return tuple(items)


__all__ = ["SETUP", "Stage", "attest", "compile_module", "configure_wasi", "fetch", "instantiate", "open_sockets",
           "plan", "with_stage"]
