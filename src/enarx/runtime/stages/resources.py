"""Stage: open what the workload is given besides its module — its sockets, bound and connected up front.

Sockets are opened before anything else that can fail slowly, so that a wrong address stops the keep at
once. Attaching them needs the module's memory to be an import (the socket calls and the dispatcher share
it), so this stage also rewrites the module bytes that the compile stage will compile.
"""

from __future__ import annotations

from enarx.errors import KeepError
from enarx.runtime.launch import Launch, StageFailure, config_failure


def open_sockets(launch: Launch) -> None:
    plan = launch.need_plan()
    if not plan.sockets:
        return
    from enarx.runtime.identity import KeepIdentity
    from enarx.runtime.net.sockets import open_sockets as open_all
    from enarx.runtime.net.wasmedit import WasmEditError, import_memory

    req = launch.request
    if plan.needs_identity and launch.identity is None:
        launch.identity = KeepIdentity.generate().self_sign()
    try:
        launch.sockets = open_all(plan.sockets, launch.identity, req.config_source or "Enarx.toml")
    except KeepError as exc:
        raise config_failure(launch, str(exc)) from None
    try:
        rewritten, mem_module, mem_name, limits = import_memory(bytes(launch.module_bytes))
    except (WasmEditError, IndexError) as exc:
        raise StageFailure(f"{req.module_name}: cannot attach sockets: {exc}") from None
    launch.module_bytes = rewritten
    launch.memory_import = (mem_module, mem_name, limits)
