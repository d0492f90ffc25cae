"""A keep started from a process that has already run wasm (an API user, a test process): wasmtime's thread
pools (compilation, WASI I/O) exist there, and a forked child would inherit their state without their
threads and wait forever. The keep must still compile and do I/O."""

from __future__ import annotations

import subprocess
import sys

from conftest import example

RUN_WASM_THEN_A_KEEP = """
import os, wasmtime, enarx
engine = wasmtime.Engine()
r, w = os.pipe(); os.write(w, b"in-process"); os.close(w)
wasi = wasmtime.WasiConfig(); wasi.stdin_file = f"/dev/fd/{{r}}"
store = wasmtime.Store(engine); store.set_wasi(wasi); os.close(r)
linker = wasmtime.Linker(engine); linker.define_wasi()
linker.instantiate(store, wasmtime.Module.from_file(engine, {cat!r})).exports(store)["_start"](store)
chunks = []
result = enarx.run({cat!r}, stdin=b"via the API", stdout=chunks.append, stderr=None)
print(result.status, b"".join(chunks))
"""


def test_a_keep_started_after_in_process_wasm_runs():
    script = RUN_WASM_THEN_A_KEEP.format(cat=str(example("c", "cat")))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[-1:] == ["0 b'via the API'"], proc.stderr


FORK_AFTER_COMPILE = """
import os
from enarx.runtime.engine import load_module, make_engine
load_module(make_engine(), open({cat!r}, "rb").read(), None)  # this process compiles: wasmtime's pool exists
pid = os.fork()
if pid == 0:  # what an API user's keep does: the pool's threads do not exist in the child
    load_module(make_engine(), open({hello!r}, "rb").read(), None)
    os._exit(0)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_keep_forked_from_a_process_that_compiled_can_still_compile():
    script = FORK_AFTER_COMPILE.format(cat=str(example("c", "cat")), hello=str(example("c", "hello")))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "0", proc.stderr  # before: the child waited forever for the pool
