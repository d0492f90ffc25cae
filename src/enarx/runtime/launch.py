"""One workload's way through the keep's stages: the state each stage reads and fills in.

A stage is a function ``stage(launch) -> None`` with one job (plan, attest, open sockets, compile, …). It
either fills in its part of the :class:`Launch` or raises :class:`StageFailure` with the one-line reason
the keep reports. Nothing here needs a channel to a host, so every stage runs in-process in a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enarx.protocol import ExitReport, LaunchRequest
from enarx.runtime.stdio import StdinFeeder

if TYPE_CHECKING:
    from enarx.protocol import Channel
    from enarx.runtime.plan import WorkloadPlan
    from enarx.runtime.stdio import OutputPump

STATUS_TRAP = 134  # like wasmtime's CLI: a trap is an abort
STATUS_TIMEOUT = 124  # like timeout(1)
STATUS_SIGNAL = {"SIGINT": 130, "SIGTERM": 143, "SIGPIPE": 141}
STATUS_ERROR = 1


class StageFailure(Exception):
    """A stage cannot go on: the keep reports ``report`` (by default an ``error`` with status 1) and ends."""

    def __init__(self, message: str, *, status: int = STATUS_ERROR, kind: str = "error"):
        super().__init__(message)
        self.report = ExitReport(status, kind, message)


def config_failure(launch: Launch, message: str) -> StageFailure:
    """A refusal of the Enarx.toml in effect; a private package's names the key and position, not its values."""
    if launch.withhold_config is None:
        return StageFailure(message)
    from enarx.config.withhold import withheld

    return StageFailure(withheld(message, launch.request.config_source or "Enarx.toml", launch.withhold_config))


class Launch:
    """Everything one workload's start-up produces, stage by stage. A plain class: it is on the start-up path.

    ``channel`` is where stdout/stderr pumps send their frames (``None`` in stage tests that run no pumps).
    """

    def __init__(self, request: LaunchRequest, module: bytes | memoryview, channel: Channel | None = None):
        self.request = request
        self.wasm = module  # the workload as sent: what attestation measures
        self.module_bytes: bytes | memoryview = module  # what is compiled (sockets rewrite the memory)
        self.channel = channel
        self.attachments: dict[str, bytearray] = {}  # sent after LAUNCH (VM keeps): "tree", "native"
        self.native: bytes | bytearray | None = None  # precompiled module, when a stage accepted it
        self.stdin = StdinFeeder()  # frames queue here from the start; wired (or discarded) by a stage
        self.plan: WorkloadPlan | None = None
        self.identity: Any = None  # KeepIdentity: from the Steward, or self-signed when TLS needs one
        self.sockets: Any = None  # SocketTable
        self.memory_import: Any = None  # (module, name, MemoryLimits) of the memory the socket rewrite made
        self.engine: Any = None
        self.module: Any = None  # wasmtime.Module
        self.entry: str | None = None  # "_start" or "" (the default export)
        self.wasi: Any = None  # wasmtime.WasiConfig until the store takes it
        self.stdin_poll_fd: int | None = None  # for the socket calls' poll_oneoff
        self.fds_to_close: list[int] = []  # our copies of descriptors wasmtime opened itself
        self.placeholder_dir: str | None = None
        self.pumps: list[OutputPump] = []
        self.store: Any = None
        self.instance: Any = None
        self.memory: Any = None  # the instance's exported memory, for the memory-limit diagnosis
        self.staging_dir: str | None = None  # a fetched package's data files (private; removed at the end)
        self.push_inbox: Any = None  # queue.Queue of PUSH payloads while the keep awaits a push
        self.package_files: dict[str, bytearray] | None = None  # a decrypted package, in the keep's memory
        self.withhold_config: str | None = None  # a private package (its origin): Enarx.toml errors name keys only

    def need_plan(self) -> WorkloadPlan:
        assert self.plan is not None, "the plan stage runs first"
        return self.plan

    def close(self) -> None:
        """Release what the stages opened. Closing the store closes wasmtime's stdio: the pumps see EOF."""
        if self.store is not None:
            self.store.close()
        for fd in self.fds_to_close:
            _close_fd(fd)
        self.fds_to_close = []
        if self.sockets is not None:
            self.sockets.close_all()
        if self.placeholder_dir is not None:
            import os

            os.rmdir(self.placeholder_dir)
            self.placeholder_dir = None
        self.remove_staging()

    def remove_staging(self) -> None:
        """Delete a fetched package's staged files (also when the keep ends abruptly)."""
        if self.staging_dir is not None:
            import shutil

            shutil.rmtree(self.staging_dir, ignore_errors=True)
            self.staging_dir = None


def _close_fd(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
