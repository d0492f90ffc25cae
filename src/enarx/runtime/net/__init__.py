"""Keep networking: sockets bound or connected before the workload starts, handed over as WASI fds.

wasmtime-py has no socket preopens, and its preview-1 ``sock_*`` calls are stubs. So (see
``docs/networking.md``): the guest's memory becomes an import (:mod:`wasmedit`), a small wasm
*dispatcher* (:mod:`dispatcher`) sits between the guest and WASI and sends calls on socket fds to Python
(:mod:`abi`) and every other call straight on to wasmtime's WASI — in wasm, so stdio and files pay
nothing. Python owns the real sockets (:mod:`sockets`), and ends TLS inside the keep (:mod:`tls`).
"""
