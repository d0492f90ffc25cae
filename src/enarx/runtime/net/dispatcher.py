"""The wasm dispatcher between a guest and WASI: socket fds go to Python, everything else to wasmtime.

Generated once as WebAssembly text. It imports the guest's memory (and re-exports it as ``memory``, so
that wasmtime's WASI functions it calls find their caller's memory), the real WASI functions and the
Python socket functions; each exported function compares the fd with the socket ranges in wasm, so a
call on stdio or a file costs one comparison and no Python.
"""

from __future__ import annotations

from enarx.runtime.net.wasmedit import IMPORT_MODULE

WASI = "wasi_snapshot_preview1"
PY = "enarx:net"
FIRST_DYNAMIC_FD = 0x10000000  # accepted connections get fds from here: never wasmtime's

#: WASI functions whose first parameter is an fd, with their parameter types (result: i32 errno).
FD_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "fd_read": ("i32", "i32", "i32", "i32"),
    "fd_write": ("i32", "i32", "i32", "i32"),
    "fd_close": ("i32",),
    "fd_fdstat_get": ("i32", "i32"),
    "fd_fdstat_set_flags": ("i32", "i32"),
    "fd_filestat_get": ("i32", "i32"),
    "fd_prestat_get": ("i32", "i32"),
    "fd_prestat_dir_name": ("i32", "i32", "i32"),
    "fd_seek": ("i32", "i64", "i32", "i32"),
    "fd_tell": ("i32", "i32"),
    "fd_sync": ("i32",),
    "fd_datasync": ("i32",),
    "fd_renumber": ("i32", "i32"),
    "sock_accept": ("i32", "i32", "i32"),
    "sock_recv": ("i32", "i32", "i32", "i32", "i32", "i32"),
    "sock_send": ("i32", "i32", "i32", "i32", "i32"),
    "sock_shutdown": ("i32", "i32"),
}
#: Handled by Python whatever the fd (readiness must mix sockets, stdio and clocks).
PY_ONLY: dict[str, tuple[str, ...]] = {"poll_oneoff": ("i32", "i32", "i32", "i32")}


def dispatcher_wat() -> str:
    lines = [
        "(module",
        f'  (import "{IMPORT_MODULE}" "memory" (memory 0))',
        f'  (import "{IMPORT_MODULE}" "sock_lo" (global $lo i32))',
        f'  (import "{IMPORT_MODULE}" "sock_hi" (global $hi i32))',
    ]
    for name, params in FD_FUNCTIONS.items():
        sig = f"(param {' '.join(params)}) (result i32)"
        lines.append(f'  (import "{WASI}" "{name}" (func $w_{name} {sig}))')
        lines.append(f'  (import "{PY}" "{name}" (func $p_{name} {sig}))')
    for name, params in PY_ONLY.items():
        lines.append(f'  (import "{PY}" "{name}" (func $p_{name} (param {" ".join(params)}) (result i32)))')
    lines.append("  (func $is_sock (param $fd i32) (result i32)")
    lines.append("    (i32.or")
    lines.append("      (i32.and (i32.ge_u (local.get $fd) (global.get $lo)) (i32.lt_u (local.get $fd) (global.get $hi)))")
    lines.append(f"      (i32.ge_u (local.get $fd) (i32.const {FIRST_DYNAMIC_FD}))))")
    for name, params in FD_FUNCTIONS.items():
        args = " ".join(f"(local.get {i})" for i in range(len(params)))
        lines.append(f'  (func (export "{name}") (param {" ".join(params)}) (result i32)')
        lines.append("    (if (result i32) (call $is_sock (local.get 0))")
        lines.append(f"      (then (call $p_{name} {args}))")
        lines.append(f"      (else (call $w_{name} {args}))))")
    for name, params in PY_ONLY.items():
        args = " ".join(f"(local.get {i})" for i in range(len(params)))
        lines.append(f'  (func (export "{name}") (param {" ".join(params)}) (result i32) (call $p_{name} {args}))')
    lines.append('  (export "memory" (memory 0)))')
    return "\n".join(lines)
