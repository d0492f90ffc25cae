"""Host functions called from wasm with raw values: the cheap way from the dispatcher into Python.

wasmtime-py's ``Linker.define_func`` goes through a generic trampoline that wraps the caller and boxes
every argument and result in ``Val`` objects: about 20 µs per call on this machine, which made that
trampoline, not the socket work, the largest cost of a socket call (see ``docs/networking.md``). The
functions here use wasmtime's *unchecked* host-function API instead: the arguments arrive as one array
of 16-byte raw values, are unpacked with a single precompiled ``struct`` call, and the ``i32`` result is
stored in place (about 1.5 µs per call).

This uses names wasmtime-py does not document (``Store._context``, ``Func._from_raw`` and the raw
``_wasmtime_memory_data_size``); the
wasmtime version is pinned in ``pyproject.toml`` and every networking test goes through this path.
"""

from __future__ import annotations

import ctypes
import struct
import weakref
from collections.abc import Callable

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

RAW_VALUE_SIZE = 16  # sizeof(wasmtime_val_raw_t): a union as wide as a v128

_Callback = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_NO_FINALIZER = ctypes.cast(None, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
_data_size = _bindings._wasmtime_memory_data_size  # the raw ctypes function: one Python frame less per call
# The ctypes callbacks of each store's host functions, alive exactly as long as the store: wasmtime holds only
# a bare code pointer to them.
_ALIVE: weakref.WeakKeyDictionary[wasmtime.Store, list[object]] = weakref.WeakKeyDictionary()
_PARAM_FORMAT = {"i32": "I12x", "i64": "q8x"}  # i32 arguments arrive unsigned (guest pointers, fds, flags)


def raw_i32_func(store: wasmtime.Store, params: tuple[str, ...], impl: Callable[..., int],
                 to_result: Callable[[Exception], int]) -> wasmtime.Func:
    """A ``(params) -> i32`` host function calling ``impl(*args)``.

    An exception from ``impl`` becomes the result ``to_result(exc)`` (an errno); one that ``to_result``
    raises again traps the guest (a keep bug must stop the workload, never hand it a made-up result).
    """
    assert ctypes.sizeof(ffi.wasmtime_val_raw_t) == RAW_VALUE_SIZE
    layout = struct.Struct("<" + "".join(_PARAM_FORMAT[p] for p in params))
    unpack, size = layout.unpack, layout.size
    string_at, result_at = ctypes.string_at, ctypes.c_uint32.from_address

    def call(_env: int | None, _caller: int | None, values: int, _count: int) -> int:
        try:
            try:
                result = impl(*unpack(string_at(values, size)))
            except Exception as exc:  # noqa: BLE001 - mapped to an errno, or raised again
                result = to_result(exc)
            result_at(values).value = result
        except BaseException as exc:  # noqa: BLE001 - turned into a trap with the reason
            return _trap(f"enarx keep: host call failed: {type(exc).__name__}: {exc}")
        return 0

    callback = _Callback(call)
    _ALIVE.setdefault(store, []).append(callback)  # freed code would crash the keep at the next call
    functype = wasmtime.FuncType([_valtype(p) for p in params], [wasmtime.ValType.i32()])
    raw = ffi.wasmtime_func_t()
    ffi.wasmtime_func_new_unchecked(store._context(), functype.ptr(),
                                    ctypes.cast(callback, ffi.wasmtime_func_unchecked_callback_t),
                                    None, _NO_FINALIZER, ctypes.byref(raw))
    return wasmtime.Func._from_raw(raw)


def _valtype(name: str) -> wasmtime.ValType:
    return wasmtime.ValType.i64() if name == "i64" else wasmtime.ValType.i32()


def _trap(message: str) -> int:
    trap = wasmtime.Trap(message)._consume()
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


class MemoryView:
    """The guest's linear memory as a ``memoryview``, rebuilt only when the memory grew (the only time its
    base may move). One raw call per use instead of wasmtime-py's layered accessors."""

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory):
        self._context = store._context()
        self._memory = ctypes.byref(memory._memory)
        self._size = -1
        self._view = memoryview(b"")

    def get(self) -> memoryview:
        size = _data_size(self._context, self._memory)
        if size != self._size:
            base = ctypes.addressof(ffi.wasmtime_memory_data(self._context, self._memory).contents)
            self._view = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")
            self._size = size
        return self._view
