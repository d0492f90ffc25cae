"""The keep runtime: the code that runs *inside* a keep.

It speaks the host↔keep protocol on one channel, interprets the package (module + Enarx.toml), compiles
or loads the module from the cache, wires WASI and runs the workload under wasmtime. Nothing here trusts
the host: every frame is validated and the Enarx.toml is parsed again inside the keep.
"""
