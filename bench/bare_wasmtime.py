"""Baseline: the same module run by a bare wasmtime-py script (serialized-module cache, inherited stdio)."""

import os
import sys

import wasmtime


def main() -> int:
    path = sys.argv[1]
    cache = os.path.join(os.environ.get("BARE_CACHE", "/tmp"), os.path.basename(path) + ".bare.cwasm")
    engine = wasmtime.Engine()
    if not os.path.exists(cache):
        with open(cache, "wb") as fh:
            fh.write(wasmtime.Module.from_file(engine, path).serialize())
    module = wasmtime.Module.deserialize_file(engine, cache)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [path, *sys.argv[2:]]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exc:
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
