"""A package on disk as a Drawbridge tree: a ``.wasm`` file (a one-file tree, as Enarx publishes
``main.wasm``), or a package directory: ``main.wasm``, an optional ``Enarx.toml`` and — beyond Enarx —
data files in subdirectories (read by the workload through ``dir`` entries of its Enarx.toml).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from enarx.drawbridge.content import (
    CT_DIRECTORY,
    CT_OCTETS,
    CT_TOML,
    CT_WASM,
    Entry,
    Hasher,
    encode_directory,
)
from enarx.drawbridge.names import is_entry_name
from enarx.errors import WorkloadError
from enarx.workload import check_wasm_header

TOP_LEVEL_FILES = ("main.wasm", "Enarx.toml")
MAX_NODES = 100_000


def media_type(name: str) -> str:
    if name.endswith(".wasm"):
        return CT_WASM
    if name.endswith(".toml"):
        return CT_TOML
    return CT_OCTETS


@dataclass
class TreeNode:
    path: str  # "" = the root
    entry: Entry
    file: Path | None = None  # a file's bytes are read from here when uploaded
    content: bytes | None = None  # a directory's canonical document

    @property
    def length(self) -> int:
        return self.entry.length


def _file_entry(path: Path) -> Entry:
    hasher = Hasher()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
    return Entry(hasher.digests(), hasher.length, media_type(path.name))


def _check_main(path: Path) -> None:
    with open(path, "rb") as fh:
        check_wasm_header(fh.read(8), str(path))


def build_tree(path: str | os.PathLike[str]) -> list[TreeNode]:
    """Every node of the tree, root first, parents before their children (sorted by path)."""
    root = Path(path)
    try:
        mode = os.stat(root).st_mode
    except OSError as exc:
        raise WorkloadError(f"{root}: cannot read: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        if root.suffix != ".wasm":
            raise WorkloadError(f"{root}: a package is a .wasm file or a directory holding main.wasm")
        _check_main(root)
        return [TreeNode("", _file_entry(root), file=root)]
    if not stat.S_ISDIR(mode):
        raise WorkloadError(f"{root}: not a file or a directory")
    if not (root / "main.wasm").is_file():
        raise WorkloadError(f"{root}: a package directory needs a main.wasm")
    _check_main(root / "main.wasm")
    nodes: list[TreeNode] = []
    _walk(root, "", nodes, top=True)
    return sorted(nodes, key=lambda n: n.path.split("/") if n.path else [])


def _walk(directory: Path, prefix: str, nodes: list[TreeNode], *, top: bool) -> Entry:
    entries: dict[str, Entry] = {}
    for item in sorted(os.scandir(directory), key=lambda e: e.name):
        where = f"{directory / item.name}"
        if not is_entry_name(item.name):
            raise WorkloadError(f"{where}: file names in a package are letters, digits, '.', '_', ':' or '-'")
        if item.is_symlink():
            raise WorkloadError(f"{where}: symbolic links cannot be published; copy the file instead")
        sub = f"{prefix}/{item.name}" if prefix else item.name
        if item.is_dir():
            entries[item.name] = _walk(Path(item.path), sub, nodes, top=False)
        elif item.is_file():
            if top and item.name not in TOP_LEVEL_FILES:
                raise WorkloadError(f"{where}: the top of a package holds only main.wasm and Enarx.toml; put data "
                                    "files in a subdirectory")
            entry = _file_entry(Path(item.path))
            entries[item.name] = entry
            nodes.append(TreeNode(sub, entry, file=Path(item.path)))
        else:
            raise WorkloadError(f"{where}: not a regular file or directory")
        if len(nodes) > MAX_NODES:
            raise WorkloadError(f"{directory}: a package holds at most {MAX_NODES} files and directories")
    content = encode_directory(entries)
    entry = Entry.of(content, CT_DIRECTORY)
    nodes.append(TreeNode(prefix, entry, content=content))
    return entry
