"""Find and check a workload: a ``.wasm`` file, or a package directory with ``main.wasm`` and ``Enarx.toml``."""

from __future__ import annotations

import os
from typing import NamedTuple

from enarx.errors import WorkloadError

MAX_WASM_BYTES = 100_000_000  # Enarx's package limit
WASM_MAGIC = b"\0asm"
CORE_VERSION = b"\x01\x00\x00\x00"


class Workload(NamedTuple):
    name: str  # argv[0] in plain WASI mode
    wasm: bytes
    config_path: str | None  # the package's Enarx.toml, if any


def load_workload(path: str | os.PathLike[str]) -> Workload:
    p = os.fspath(path)
    config_path: str | None = None
    if os.path.isdir(p):
        wasm_path = os.path.join(p, "main.wasm")
        if not os.path.exists(wasm_path):
            raise WorkloadError(f"{p}: package directory has no main.wasm; put the module there under that "
                                "name, or run the .wasm file itself")
        config_path = os.path.join(p, "Enarx.toml")
        if os.path.isdir(config_path):
            raise WorkloadError(f"{config_path}: is a directory; a package's Enarx.toml must be a file")
        if not os.path.exists(config_path):
            config_path = None
    else:
        wasm_path = p
    try:
        with open(wasm_path, "rb") as fh:
            wasm = fh.read(MAX_WASM_BYTES + 1)
    except FileNotFoundError:
        raise WorkloadError(f"{wasm_path}: no such file") from None
    except IsADirectoryError:
        raise WorkloadError(f"{wasm_path}: is a directory, expected a WebAssembly module (.wasm)") from None
    except OSError as exc:
        raise WorkloadError(f"{wasm_path}: cannot read: {exc.strerror}") from None
    if len(wasm) > MAX_WASM_BYTES:
        raise WorkloadError(f"{wasm_path}: larger than the {MAX_WASM_BYTES}-byte limit for a workload")
    check_wasm_header(wasm, wasm_path)
    return Workload(name=os.path.basename(wasm_path), wasm=wasm, config_path=config_path)


def check_wasm_header(wasm: bytes, where: str) -> None:
    if wasm[:4] != WASM_MAGIC:
        raise WorkloadError(f"{where}: not a WebAssembly module (it does not start with \\0asm)")
    if wasm[4:8] != CORE_VERSION:
        if len(wasm) >= 8 and wasm[6:8] == b"\x01\x00":
            raise WorkloadError(f"{where}: is a WebAssembly component; only core WASI preview 1 modules run")
        raise WorkloadError(f"{where}: unsupported WebAssembly version {wasm[4:8].hex()}")
