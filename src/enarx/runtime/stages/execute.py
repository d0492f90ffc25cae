"""Stages after set-up: run the workload (mapping traps to statuses) and conclude (diagnose, release)."""

from __future__ import annotations

from enarx.protocol import ExitReport
from enarx.runtime.launch import STATUS_TRAP, Launch
from enarx.runtime.stages.instantiate import first_line, size_text

_TRAP_NAMES = {
    "STACK_OVERFLOW": "stack overflow",
    "MEMORY_OUT_OF_BOUNDS": "out-of-bounds memory access",
    "HEAP_MISALIGNED": "misaligned memory access",
    "TABLE_OUT_OF_BOUNDS": "out-of-bounds table access",
    "INDIRECT_CALL_TO_NULL": "indirect call to a null table entry",
    "BAD_SIGNATURE": "indirect call signature mismatch",
    "INTEGER_OVERFLOW": "integer overflow",
    "INTEGER_DIVISION_BY_ZERO": "integer division by zero",
    "BAD_CONVERSION_TO_INTEGER": "invalid conversion to integer",
    "UNREACHABLE": "unreachable instruction executed",
    "INTERRUPT": "interrupted",
    "OUT_OF_FUEL": "out of fuel",
}


def run_workload(launch: Launch) -> ExitReport:
    """Call the entry point; the workload's own exit status, or a trap as status 134 with its reason."""
    import wasmtime

    assert launch.instance is not None and launch.entry is not None, "the set-up stages ran"
    try:
        launch.instance.exports(launch.store)[launch.entry](launch.store)
        return ExitReport(0)
    except wasmtime.ExitTrap as exc:
        return ExitReport(exc.code & 0xFF)
    except wasmtime.Trap as exc:
        code = exc.trap_code.name if exc.trap_code is not None else ""
        name = _TRAP_NAMES.get(code, first_line(exc))
        return ExitReport(STATUS_TRAP, "trap", f"workload trapped: {name}")
    except wasmtime.WasmtimeError as exc:
        return ExitReport(STATUS_TRAP, "trap", f"workload failed: {first_line(exc)}")


def conclude(launch: Launch, report: ExitReport) -> ExitReport:
    """The final report (a failure near the memory limit says so) after releasing the store and sockets."""
    report = _diagnose_memory(launch, report)
    launch.close()
    return report


def _diagnose_memory(launch: Launch, report: ExitReport) -> ExitReport:
    limit = launch.plan.memory_limit if launch.plan is not None else None
    if limit is None or report.status == 0 or launch.memory is None:
        return report
    import wasmtime

    if not isinstance(launch.memory, wasmtime.Memory):
        return report
    used = launch.memory.data_len(launch.store)
    if used < limit * 0.9:
        return report
    # a memory.grow was (almost certainly) refused
    note = f"it had used {size_text(used)} of its {size_text(limit)} memory limit"
    if report.kind == "exit":
        return ExitReport(report.status, "memory", f"workload exited with status {report.status}; {note}")
    return report._replace(error=f"{report.error}; {note}")
