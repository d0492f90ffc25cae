"""The raw host-function path of keep sockets (runtime/net/hostcall.py): it must not depend on who else
keeps the Python side alive, and its errors must map to errnos or traps, never to a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import gc, socket, struct, wasmtime
    from enarx.runtime.net.abi import SocketCalls
    from enarx.runtime.net.dispatcher import PY
    from enarx.runtime.net.sockets import KeepSocket, SocketTable

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, None)))
    a, b = socket.socketpair()
    table = SocketTable()
    table.entries[3] = KeepSocket(a, "x")
    linker = wasmtime.Linker(engine)
    linker.define(store, "m", "memory", memory)
    SocketCalls(table, memory, store, None).define(linker)  # nothing else keeps it
    gc.collect()
    wat = '''(module (import "m" "memory" (memory 1))
      (import "%s" "fd_fdstat_get" (func $get (param i32 i32) (result i32)))
      (import "%s" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (func (export "stat") (param $fd i32) (param $buf i32) (result i32) (call $get (local.get $fd) (local.get $buf)))
      (func (export "write") (param i32 i32 i32 i32) (result i32)
        (call $write (local.get 0) (local.get 1) (local.get 2) (local.get 3))))''' % (PY, PY)
    exports = linker.instantiate(store, wasmtime.Module(engine, wasmtime.wat2wasm(wat))).exports(store)
    gc.collect()
    results = [exports["stat"](store, 3, 0) for _ in range(1000)]
    print(results[0], memory.read(store, 0, 1)[0])           # SUCCESS, filetype 6 (socket stream)
    print(exports["stat"](store, 99, 0))                      # EBADF: not a socket fd
    print(exports["stat"](store, 3, 65536 - 4))               # EFAULT: the result would not fit in memory
    memory.write(store, struct.pack("<II", 24, 3) + b"hey", 16)
    print(exports["write"](store, 3, 16, 1, 8), b.recv(10))  # SUCCESS, the bytes arrived
""")


def test_host_functions_survive_garbage_collection_and_map_errors():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # a freed callback would crash here (SIGSEGV)
    assert proc.stdout.splitlines() == ["0 6", "8", "21", "0 b'hey'"]
