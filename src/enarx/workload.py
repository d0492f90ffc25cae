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
    package_root: str | None = None  # the package directory (for a package, not a plain .wasm file)


def load_workload(path: str | os.PathLike[str]) -> Workload:
    p = os.fspath(path)
    config_path: str | None = None
    package_root: str | None = None
    if os.path.isdir(p):
        package_root = p
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
    return Workload(name=os.path.basename(wasm_path), wasm=wasm, config_path=config_path,
                    package_root=package_root)


def check_wasm_header(wasm: bytes, where: str) -> None:
    if wasm[:4] != WASM_MAGIC:
        raise WorkloadError(f"{where}: not a WebAssembly module (it does not start with \\0asm)")
    if wasm[4:8] != CORE_VERSION:
        if len(wasm) >= 8 and wasm[6:8] == b"\x01\x00":
            raise WorkloadError(f"{where}: is a WebAssembly component; only core WASI preview 1 modules run")
        raise WorkloadError(f"{where}: unsupported WebAssembly version {wasm[4:8].hex()}")


def package_digest(wasm: bytes, config_text: str | None, files: bytes = b"", algorithm: str = "sha256") -> bytes:
    """The workload a confidential VM keep's launch is bound to: a digest over the module, the Enarx.toml text
    and the archive of host files it names (each length-prefixed, in that order). SEV-SNP HOST_DATA takes the
    SHA-256, TDX MRCONFIGID the SHA-384; the keep checks its own report against what it received."""
    import hashlib

    h = hashlib.new(algorithm, b"enarx-package-v1\0")
    for part in (bytes(wasm), (config_text or "").encode(), bytes(files)):
        h.update(len(part).to_bytes(8, "big") + part)
    return h.digest()
