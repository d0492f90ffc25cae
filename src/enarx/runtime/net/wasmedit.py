"""Byte-level edit of a wasm module: turn its one defined memory into an import.

Then the keep creates the memory itself and hands the same :class:`wasmtime.Memory` to the guest and to
the dispatcher, which is what lets wasmtime's WASI functions (which find memory through their caller's
``memory`` export) work when called through the dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass

IMPORT_MODULE = "enarx:keep"
IMPORT_NAME = "memory"
_SECTION_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 12: 10, 10: 11, 11: 12, 13: 5.5}


class WasmEditError(ValueError):
    """The module has a shape this edit does not support (it is then reported, never guessed at)."""


@dataclass(frozen=True)
class MemoryLimits:
    minimum: int  # pages
    maximum: int | None


def _leb_u(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WasmEditError("truncated LEB128 integer")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WasmEditError("LEB128 integer too long")


def _enc_u(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _name(data: bytes, pos: int) -> int:
    length, pos = _leb_u(data, pos)
    return pos + length


def _sections(wasm: bytes) -> list[tuple[int, bytes]]:
    if wasm[:8] != b"\0asm\x01\0\0\0":
        raise WasmEditError("not a core wasm module")
    pos, out = 8, []
    while pos < len(wasm):
        sid = wasm[pos]
        size, start = _leb_u(wasm, pos + 1)
        end = start + size
        if end > len(wasm):
            raise WasmEditError("section extends past the end of the module")
        out.append((sid, wasm[start:end]))
        pos = end
    return out


def _read_limits(payload: bytes, pos: int) -> tuple[MemoryLimits, int]:
    flags = payload[pos]
    pos += 1
    if flags & ~0x01:
        raise WasmEditError("shared or 64-bit memories are not supported with sockets")
    minimum, pos = _leb_u(payload, pos)
    maximum = None
    if flags & 0x01:
        maximum, pos = _leb_u(payload, pos)
    return MemoryLimits(minimum, maximum), pos


def _memory_imports(payload: bytes) -> list[tuple[str, str, MemoryLimits]]:
    count, pos = _leb_u(payload, 0)
    found = []
    for _ in range(count):
        mstart = pos
        pos = _name(payload, pos)
        module = payload[mstart:pos]
        fstart = pos
        pos = _name(payload, pos)
        field = payload[fstart:pos]
        kind = payload[pos]
        pos += 1
        if kind == 0x00:  # function: type index
            _, pos = _leb_u(payload, pos)
        elif kind == 0x01:  # table: reftype + limits
            pos += 1
            flags = payload[pos]
            _, pos = _leb_u(payload, pos + 1)
            if flags & 0x01:
                _, pos = _leb_u(payload, pos)
        elif kind == 0x02:
            limits, pos = _read_limits(payload, pos)
            found.append((_decode_name(module), _decode_name(field), limits))
        elif kind == 0x03:  # global: valtype + mutability
            pos += 2
        elif kind == 0x04:  # tag
            pos += 1
            _, pos = _leb_u(payload, pos)
        else:
            raise WasmEditError(f"unknown import kind {kind}")
    return found


def _decode_name(raw: bytes) -> str:
    _, pos = _leb_u(raw, 0)
    return raw[pos:].decode("utf-8", "replace")


def import_memory(wasm: bytes) -> tuple[bytes, str, str, MemoryLimits]:
    """Return (new module, import module, import name, limits) with the guest's memory imported.

    A module that already imports its memory is returned unchanged with that import's names.
    """
    sections = _sections(wasm)
    imports = next((p for s, p in sections if s == 2), None)
    if imports is not None:
        mems = _memory_imports(imports)
        if mems:
            module, name, limits = mems[0]
            return wasm, module, name, limits
    memory = next((p for s, p in sections if s == 5), None)
    if memory is None:
        raise WasmEditError("the module has no memory")
    count, pos = _leb_u(memory, 0)
    if count != 1:
        raise WasmEditError(f"the module defines {count} memories; exactly one is supported with sockets")
    limits, _ = _read_limits(memory, pos)
    entry = (_enc_u(len(IMPORT_MODULE)) + IMPORT_MODULE.encode() + _enc_u(len(IMPORT_NAME))
             + IMPORT_NAME.encode() + b"\x02" + memory[pos:])
    out = bytearray(wasm[:8])
    placed = False
    for sid, payload in sections:
        if sid == 5:
            continue
        if sid == 2:
            n, p = _leb_u(payload, 0)
            payload = _enc_u(n + 1) + payload[p:] + entry
            placed = True
        elif not placed and sid != 0 and _SECTION_ORDER.get(sid, 99) > 2:
            new = _enc_u(1) + entry
            out += b"\x02" + _enc_u(len(new)) + new
            placed = True
        out += bytes([sid]) + _enc_u(len(payload)) + payload
    if not placed:
        new = _enc_u(1) + entry
        out += b"\x02" + _enc_u(len(new)) + new
    return bytes(out), IMPORT_MODULE, IMPORT_NAME, limits
