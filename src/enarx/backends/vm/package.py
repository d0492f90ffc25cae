"""What a VM keep is sent besides its LAUNCH: the host files its package names, and (kvm only) native code.

A confidential VM keep shares no filesystem with the host. The files an Enarx.toml names — read-only ``dir``
entries and CA bundles — travel as a tar attachment, unpacked inside the guest (a ``kvm`` keep gets its
read-only directories as disks instead); a writable directory cannot be copied and is refused, except by a
``kvm`` keep, whose host shares it live (:mod:`enarx.backends.vm.shares`). A ``kvm`` keep trusts its host, so the host may also send the module
compiled for the guest's CPU from its own cache (compiling a large module under TCG takes a minute);
confidential keeps are never sent native code.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from enarx.config import Config, ConnectFile, DirFile, ListenFile
from enarx.errors import ConfigError
from enarx.protocol.frames import MAX_ATTACHMENTS

#: The code the host compiles for a guest: x86-64-v2, which every KVM host and QEMU's ``-cpu max`` have.
GUEST_TARGET = "x86_64-unknown-linux-gnu"
GUEST_CPU_FLAGS = ("has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt")


def host_files(config: Config | None, dirs: list[tuple[str, str, bool]] | tuple[()] = ()) -> list[str]:
    """Absolute paths of the host files and directories the package names, to be copied into the keep;
    refuses writable directories and ``--dir`` (only a kvm keep may share those: :func:`shared_dirs`).
    (A kvm keep gets read-only directories as disks, see :func:`volume_image`; the rest travels in the tree.)"""
    if dirs:
        raise ConfigError("a confidential VM keep cannot share a host directory (--dir): add a read-only `dir` "
                          "entry to the Enarx.toml instead; the keep gets a copy")
    return _copied(config, allow_writable=False)


def shared_dirs(config: Config | None, dirs: list[tuple[str, str, bool]] | tuple[()] = ()) -> list[tuple[str, bool]]:
    """A kvm keep's directories shared live with the host: the Enarx.toml's writable ``dir`` entries and every
    ``--dir``, as (absolute path, writable)."""
    shared = {os.path.abspath(host): writable for host, _guest, writable in dirs}
    for entry in config.files if config is not None else ():
        if isinstance(entry, DirFile) and entry.writable:
            shared[os.path.abspath(entry.path)] = True
    return sorted(shared.items())


def kvm_host_files(config: Config | None) -> list[str]:
    """What a kvm keep gets as copies: :func:`host_files` without its writable (shared) directories."""
    return _copied(config, allow_writable=True)


def _copied(config: Config | None, *, allow_writable: bool) -> list[str]:
    paths: list[str] = []
    for entry in config.files if config is not None else ():
        if isinstance(entry, DirFile):
            if entry.writable:
                if allow_writable:
                    continue
                raise ConfigError(f"`dir` entry {entry.name!r} is writable, but a confidential VM keep only gets a "
                                  f"copy of {entry.path!r}: make it read-only (a kvm keep shares it)")
            paths.append(os.path.abspath(entry.path))
        elif isinstance(entry, ListenFile) and entry.client_ca:
            paths.append(os.path.abspath(entry.client_ca))
        elif isinstance(entry, ConnectFile) and entry.ca:
            paths.append(os.path.abspath(entry.ca))
    return sorted(set(paths))


def tree_archive(paths: list[str]) -> bytes:
    """A reproducible tar of ``paths`` (regular files and directories only), named by absolute path; no
    paths, no archive (``b""``)."""
    if not paths:
        return b""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(paths):
            info = tar.gettarinfo(path, arcname=path.lstrip("/"))
            info.mtime = info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode &= 0o755
            if info.isreg():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            elif info.isdir():
                tar.addfile(info)
            if out.tell() > MAX_ATTACHMENTS:
                raise ConfigError(f"the package's files exceed {MAX_ATTACHMENTS >> 20} MiB, the most a VM keep "
                                  "is sent")
    return out.getvalue()


def _walk(paths: list[str]) -> list[str]:
    found: set[str] = set()
    for path in paths:
        parts = Path(path).parts
        found.update(str(Path(*parts[:i])) for i in range(2, len(parts)))  # parent directories
        found.add(path)
        if os.path.isdir(path):
            for root, dirnames, filenames in os.walk(path):
                found.update(os.path.join(root, n) for n in dirnames + filenames)
    return sorted(p for p in found if os.path.isfile(p) or os.path.isdir(p))


def compiled_for_guest(wasm: bytes, cache: Path) -> bytes:
    """The module compiled for a guest (x86-64-v2), from the host's cache of such artefacts."""
    import wasmtime

    from enarx.runtime.engine import ENGINE_SETTINGS, _engine_fingerprint

    key = hashlib.sha256(repr((GUEST_TARGET, GUEST_CPU_FLAGS)).encode() + _engine_fingerprint().encode())
    directory = cache / f"vm-modules-{key.hexdigest()[:16]}"
    path = directory / f"{hashlib.sha256(wasm).hexdigest()}.cwasm"
    if path.is_file():
        return path.read_bytes()
    config = wasmtime.Config()
    config.cranelift_opt_level = ENGINE_SETTINGS["cranelift_opt_level"]
    config.target = GUEST_TARGET
    for flag in GUEST_CPU_FLAGS:
        config.cranelift_flag_enable(flag)
    artefact = wasmtime.Module(wasmtime.Engine(config), wasm).serialize()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}"
    tmp.write_bytes(artefact)
    os.replace(tmp, path)
    return artefact


def module_as_compiled(wasm: bytes, config: Config | None) -> bytes:
    """The bytes the keep will compile: with listen/connect sockets its memory becomes an import."""
    if config is None or not any(isinstance(e, (ListenFile, ConnectFile)) for e in config.files):
        return wasm
    from enarx.runtime.net.wasmedit import import_memory

    return import_memory(wasm)[0]


def volume_image(directory: str, cache: Path) -> Path:
    """A read-only ext4 image of ``directory`` (``mke2fs -d``), cached by the directory's listing, sizes and
    mtimes: a kvm keep mounts it instead of unpacking thousands of files under emulation."""
    import subprocess

    files: list[tuple[str, int, int]] = []
    total = 0
    for root, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            st = os.lstat(os.path.join(root, name))
            files.append((os.path.relpath(os.path.join(root, name), directory), st.st_size, st.st_mtime_ns))
            total += st.st_size
    key = hashlib.sha256(repr((os.path.abspath(directory), files)).encode()).hexdigest()[:32]
    path = cache / "volumes" / f"{key}.ext4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    size_kib = (total + 4096 * (len(files) + 64)) * 5 // 4 // 1024 + 16384
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0", "-E",
                           "root_owner=0:0", "-d", directory, str(tmp), f"{size_kib}k"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot copy {directory!r} for the keep: {proc.stderr.strip() or 'mke2fs failed'}")
    os.replace(tmp, path)
    return path
