"""The encrypted index of a package: which file is where, and how large (confidential, so encrypted).

Plaintext JSON ``{"files": [{"path": "main.wasm", "blob": "<id>", "size": N}, …]}``, sealed like any other
file. Paths are relative POSIX paths inside the package (no ``..``, no absolute paths, no empty parts);
``main.wasm`` is required, ``Enarx.toml`` optional, everything else is a data or secret file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from enarx.packaging.errors import PackageError

MODULE = "main.wasm"
CONFIG = "Enarx.toml"
MAX_PATH = 1024
MAX_INDEX = 4 << 20


@dataclass(frozen=True)
class IndexEntry:
    path: str
    blob: str
    size: int


def check_path(path: str) -> str:
    """``path`` if it is a safe relative package path; ``PackageError`` otherwise."""
    parts = path.split("/")
    if (not path or len(path) > MAX_PATH or path.startswith("/") or "\\" in path or "\x00" in path
            or any(p in ("", ".", "..") for p in parts)):
        raise PackageError(f"unsafe file path {path[:80]!r} in an encrypted package")
    return path


def encode(entries: list[IndexEntry]) -> bytes:
    return json.dumps({"files": [{"path": e.path, "blob": e.blob, "size": e.size} for e in entries]},
                      sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> list[IndexEntry]:
    if len(data) > MAX_INDEX:
        raise PackageError("the package index is too large")
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError):
        raise PackageError("the package index is not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"files"} or not isinstance(doc["files"], list):
        raise PackageError("the package index must be {\"files\": [...]}")
    out: list[IndexEntry] = []
    for item in doc["files"]:
        if (not isinstance(item, dict) or set(item) != {"path", "blob", "size"}
                or not isinstance(item["path"], str) or not isinstance(item["blob"], str)
                or not isinstance(item["size"], int) or isinstance(item["size"], bool) or item["size"] < 0):
            raise PackageError("every package index entry must be {path, blob, size}")
        out.append(IndexEntry(check_path(item["path"]), item["blob"], item["size"]))
    paths = [e.path for e in out]
    if len(set(paths)) != len(paths):
        raise PackageError("the package index lists a path twice")
    blobs = [e.blob for e in out]
    if len(set(blobs)) != len(blobs):
        raise PackageError("the package index uses one encrypted file for two paths", "tampered")
    if MODULE not in paths:
        raise PackageError("the encrypted package has no main.wasm")
    return out
