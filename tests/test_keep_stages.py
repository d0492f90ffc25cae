"""The keep runtime in-process: each start-up stage on its own, and whole keeps over an in-memory channel."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from conftest import example
from enarx.host.supervisor import Stdio, Supervisor
from enarx.protocol import Channel, ExitReport, LaunchRequest
from enarx.runtime import stages
from enarx.runtime.inmemory import InMemoryKeep
from enarx.runtime.launch import Launch, StageFailure
from enarx.runtime.stages.execute import conclude, run_workload

STDIO_TOML = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


def launch_of(module: bytes, **request) -> Launch:
    """A launch whose stdout/stderr frames go to a channel that nobody needs to read in these tests."""
    request.setdefault("module_name", "m.wasm")
    keep_end, host_end = socket.socketpair()
    threading.Thread(target=lambda: [None for _ in iter(lambda: host_end.recv(1 << 16), b"")], daemon=True).start()
    return Launch(LaunchRequest(**request), module, Channel(keep_end, max_incoming=1 << 20))


def setup(launch: Launch, upto=None) -> None:
    for stage in stages.SETUP:
        stage(launch)
        if stage is upto:
            return


def failure(launch: Launch, upto=None) -> str:
    with pytest.raises(StageFailure) as info:
        setup(launch, upto)
    assert info.value.report.status == 1 and info.value.report.kind == "error"
    return str(info.value)


# -- stages one by one ---------------------------------------------------------------------------------
def test_plan_stage_refuses_a_config_the_runtime_cannot_honour():
    launch = launch_of(b"", config_toml='[[files]]\nkind = "stdout"\n', config_source="/p/Enarx.toml")
    message = failure(launch, stages.plan)
    assert message.startswith("/p/Enarx.toml: files[0]") and "cannot be fd 0" in message


def test_plan_stage_gives_enarx_semantics():
    launch = launch_of(b"", config_toml='args = ["a"]\n' + STDIO_TOML, args=["b"], env=[("K", "V")])
    stages.plan(launch)
    assert launch.plan.argv == ["main.wasm", "a", "b"]
    assert launch.plan.env == [("FD_COUNT", "3"), ("FD_NAMES", "stdin:stdout:stderr"), ("K", "V")]


def test_attest_stage_is_skipped_without_a_steward_and_refuses_plain_http_elsewhere():
    launch = launch_of(b"", config_toml=STDIO_TOML)
    stages.plan(launch)
    stages.attest(launch)
    assert launch.identity is None
    launch = launch_of(b"", config_toml='steward = "http://steward.example.com"\n' + STDIO_TOML)
    # the keep's own parse of the text refuses it, whatever the host checked
    message = failure(launch, stages.attest)
    assert "steward: refusing to use the steward url 'http://steward.example.com'" in message and "use https" in message


def test_compile_stage_reports_invalid_modules_and_missing_entry_points():
    assert "not a valid WebAssembly module" in failure(launch_of(b"\0asm\x01\0\0\0garbage"), stages.compile_module)
    import wasmtime

    library = wasmtime.wat2wasm('(module (func (export "f") (param i32)))')
    assert "no `_start` or default export" in failure(launch_of(library), stages.compile_module)


def test_open_sockets_stage_names_the_entry_that_failed():
    toml = STDIO_TOML + '[[files]]\nkind = "listen"\nprot = "tcp"\nname = "ingest"\naddr = "192.0.2.1"\nport = 1\n'
    launch = launch_of(example("c", "echo_server").read_bytes(), config_toml=toml, config_source="E.toml")
    message = failure(launch, stages.open_sockets)
    assert message.startswith("E.toml: files[3] (ingest): cannot listen on 192.0.2.1:1")


def test_configure_wasi_stage_refuses_a_missing_directory(tmp_path):
    launch = launch_of(example("c", "hello").read_bytes(), dirs=[(str(tmp_path / "gone"), "/data", True)])
    assert "does not exist" in failure(launch, stages.configure_wasi)
    launch.close()


def test_instantiate_stage_explains_a_memory_limit_below_the_module_minimum():
    launch = launch_of(example("c", "hello").read_bytes(), memory_limit=1 << 20)
    assert "memory limit of 1 MiB is below the module's initial memory" in failure(launch)
    launch.close()


def test_run_and_conclude_map_exit_status_traps_and_the_memory_limit():
    launch = launch_of(example("c", "exit_code").read_bytes(), args=["42"])
    setup(launch)
    assert conclude(launch, run_workload(launch)) == ExitReport(42)

    launch = launch_of(example("c", "trap").read_bytes())
    setup(launch)
    assert conclude(launch, run_workload(launch)) == ExitReport(134, "trap",
                                                                "workload trapped: unreachable instruction executed")

    launch = launch_of(example("c", "memhog").read_bytes(), memory_limit=32 << 20)
    setup(launch)
    report = conclude(launch, run_workload(launch))
    assert (report.status, report.kind) == (2, "memory")
    assert "of its 32 MiB memory limit" in report.error


def test_with_stage_puts_a_stage_right_after_attest():
    def fetch(launch: Launch) -> None:
        pass

    order = stages.with_stage(stages.SETUP, fetch, after=stages.attest)
    assert order.index(fetch) == order.index(stages.attest) + 1 and len(order) == len(stages.SETUP) + 1


# -- whole keeps, in memory ----------------------------------------------------------------------------
def run_in_memory(module: str | bytes, *, stdin: bytes | None = None, keep: InMemoryKeep | None = None,
                  on_started=None, **request) -> tuple[ExitReport, bytes, bytes]:
    out: list[bytes] = []
    err: list[bytes] = []
    wasm = module if isinstance(module, bytes) else example("c", module).read_bytes()
    request.setdefault("module_name", "m.wasm")
    supervisor = Supervisor(keep or InMemoryKeep(), Stdio(stdin=stdin, stdout=out.append, stderr=err.append),
                            on_started=on_started)
    report = supervisor.run(LaunchRequest(**request), wasm, relay_stdin=stdin is not None)
    return report, b"".join(out), b"".join(err)


def test_in_memory_keep_output_stdin_and_exit_status():
    assert run_in_memory("hello") == (ExitReport(0), b"Hello, world!\n", b"")
    data = os.urandom(3 << 20)
    report, out, _ = run_in_memory("cat", stdin=data)
    assert report == ExitReport(0) and out == data
    report, _, err = run_in_memory("exit_code", args=["7"])
    assert report == ExitReport(7) and err == b"exiting with 7\n"


def test_in_memory_keep_reports_traps_and_stage_failures():
    report, _, _ = run_in_memory("trap")
    assert (report.status, report.kind) == (134, "trap")
    report, _, _ = run_in_memory("hello", config_toml="args = 3\n", config_source="E.toml")
    assert report.status == 1 and report.kind == "error" and report.error.startswith("E.toml")


def test_in_memory_keep_runs_the_stages_it_is_given():
    ran: list[str] = []

    def fetch(launch: Launch) -> None:
        ran.append(f"fetch after plan={launch.plan is not None}")

    def refuse(launch: Launch) -> None:
        raise StageFailure("secrets unavailable: the key broker refused")

    keep = InMemoryKeep(stages.with_stage(stages.SETUP, fetch, after=stages.attest))
    assert run_in_memory("hello", keep=keep)[:2] == (ExitReport(0), b"Hello, world!\n")
    assert ran == ["fetch after plan=True"]
    keep = InMemoryKeep(stages.with_stage(stages.SETUP, refuse, after=stages.attest))
    report, out, _ = run_in_memory("hello", keep=keep)
    assert report == ExitReport(1, "error", "secrets unavailable: the key broker refused") and out == b""


def test_in_memory_keep_stop_request_ends_the_keep_with_the_signal_status():
    read_fd, write_fd = os.pipe()  # stdin that never ends: the workload blocks reading it
    supervisor_box: list[Supervisor] = []

    def started(_info: dict) -> None:
        threading.Timer(0.2, supervisor_box[0].stop, args=("SIGINT",)).start()

    supervisor = Supervisor(InMemoryKeep(), Stdio(stdin=read_fd, stdout=None, stderr=None), on_started=started)
    supervisor_box.append(supervisor)
    report = supervisor.run(LaunchRequest(module_name="cat.wasm"), example("c", "cat").read_bytes(),
                            relay_stdin=True)
    assert report == ExitReport(130, "signal", "keep stopped by SIGINT")
    os.close(write_fd)
    os.close(read_fd)


def test_in_memory_keep_runtime_crash_is_reported_as_a_crash():
    def broken(launch: Launch) -> None:
        raise RuntimeError("bug in a stage")

    keep = InMemoryKeep((stages.plan, broken))
    report, _, _ = run_in_memory("hello", keep=keep)
    assert report.kind == "crash" and "process status 70" in report.error
    assert isinstance(keep.error, RuntimeError)
