"""The guest kernel: Debian's cloud kernel package, downloaded and unpacked (never installed on the host).

A kernel package gives three things the image needs: the bzImage (SEV-SNP/TDX boot it through OVMF), the
uncompressed ELF inside it (a microVM boots that directly through its PVH entry point, skipping the
decompressor: about 0.3 s under TCG), and the loadable modules (virtio transports, console and network),
loaded by the guest's init in dependency order read from each module's ``.modinfo``.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from pathlib import Path
from typing import NamedTuple

from enarx.errors import BackendError

META_PACKAGE = "linux-image-cloud-amd64"
APT_INSTALL = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]
#: What the guest needs: the virtio transports (MMIO on a microVM, PCI on q35), the keep's channel
#: (virtio-serial) and the network for listen/connect. Dependencies are added from .modinfo.
#: sev_guest/tdx_guest (and configfs TSM) give a confidential guest its evidence; elsewhere they find no device.
GUEST_MODULES = ("virtio_mmio", "virtio_pci", "virtio_console", "virtio_net", "virtio_blk", "virtiofs", "sev_guest",
                 "tdx_guest", "tsm")

_COMPRESSION_MAGIC = {b"\x02\x21\x4c\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b": "gzip",
                      b"\xfd7zXZ\x00": "xz"}


class Kernel(NamedTuple):
    """An unpacked kernel package."""

    release: str  # e.g. 6.1.0-57-cloud-amd64
    bzimage: Path
    config: Path | None
    modules: Path  # lib/modules/<release>
    package: str  # the .deb file name: names the exact version


def debian_kernel(cache: Path, *, refresh: bool = False) -> Kernel:
    """Debian's cloud kernel, downloaded with apt and unpacked under ``cache`` the first time; after that the
    unpacked one is used (asking apt takes seconds) until ``refresh`` looks for a newer package."""
    pinned = cache / "kernels" / "debian-current"
    if not refresh and pinned.exists():
        folder = cache / "kernels" / pinned.read_text().strip()
        if (folder / ".unpacked").exists():
            return kernel_from_tree(folder / "root", (folder / ".unpacked").read_text().strip())
    package = _resolve_package()
    folder = cache / "kernels" / package
    if not (folder / ".unpacked").exists():
        folder.mkdir(parents=True, exist_ok=True)
        deb = _download(package, folder)
        unpack_deb(deb, folder / "root")
        (folder / ".unpacked").write_text(deb.name + "\n")
    pinned.write_text(package + "\n")
    return kernel_from_tree(folder / "root", (folder / ".unpacked").read_text().strip())


def kernel_from_tree(root: Path, package: str) -> Kernel:
    boots = sorted((root / "boot").glob("vmlinuz-*"))
    if not boots:
        raise BackendError(f"{package}: no /boot/vmlinuz-* in the kernel package")
    release = boots[-1].name.removeprefix("vmlinuz-")
    config = root / "boot" / f"config-{release}"
    return Kernel(release, boots[-1], config if config.exists() else None, root / "lib" / "modules" / release,
                  package)


def kernel_from_deb(deb: Path, cache: Path) -> Kernel:
    """A kernel package given as a ``.deb`` file (``--kernel``), unpacked under ``cache`` by its digest."""
    import hashlib

    digest = hashlib.sha256(deb.read_bytes()).hexdigest()[:16]
    folder = cache / "kernels" / f"{deb.stem}-{digest}"
    if not (folder / ".unpacked").exists():
        unpack_deb(deb, folder / "root")
        (folder / ".unpacked").write_text(deb.name + "\n")
    return kernel_from_tree(folder / "root", deb.name)


def kernel_from_bzimage(bzimage: Path) -> Kernel:
    """A bare kernel image (``--kernel``): it has no modules, so its virtio, console and network drivers
    (and for confidential guests the SEV/TDX guest drivers and configfs TSM) must be built in."""
    import hashlib

    digest = hashlib.sha256(bzimage.read_bytes()).hexdigest()[:16]
    return Kernel(f"{bzimage.name}-{digest}", bzimage, None, bzimage.parent / ".no-modules", bzimage.name)


def _resolve_package() -> str:
    """The versioned package the meta-package points at (``apt-cache depends``), e.g. linux-image-6.1.0-57-…"""
    try:
        out = subprocess.run(["apt-cache", "depends", META_PACKAGE], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BackendError(f"cannot find Debian's {META_PACKAGE} package ({exc}); on Debian run `apt-get update`, "
                           "or build the image with --kernel PATH") from None
    for line in out.splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise BackendError(f"apt-cache names no kernel behind {META_PACKAGE}; run `apt-get update`")


def _download(package: str, folder: Path) -> Path:
    """``apt-get download`` into ``folder`` (it downloads into the working directory)."""
    for old in folder.glob("*.deb"):
        old.unlink()
    attempt = subprocess.run(["apt-get", "download", "-q", package], cwd=folder, capture_output=True, text=True)
    if attempt.returncode != 0:  # a stale index: refresh once, as the project's installs do
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        attempt = subprocess.run(["apt-get", "download", "-q", package], cwd=folder, capture_output=True, text=True)
    debs = sorted(folder.glob("*.deb"))
    if attempt.returncode != 0 or not debs:
        reason = (attempt.stderr.strip().splitlines() or ["no .deb file"])[-1]
        raise BackendError(f"cannot download {package}: {reason}")
    return debs[0]


def unpack_deb(deb: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackendError(f"cannot unpack {deb.name}: {proc.stderr.strip()}")


# -- the kernel image ------------------------------------------------------------------------------------
def vmlinux_from_bzimage(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage, for direct PVH boot: the setup header locates the compressed payload."""
    if bzimage[0x202:0x206] != b"HdrS":
        raise BackendError("not a bzImage (no HdrS setup header)")
    setup_sects = bzimage[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = bzimage[start:start + payload_length]
    for magic, kind in _COMPRESSION_MAGIC.items():
        if payload.startswith(magic):
            return _decompress(kind, payload)
    raise BackendError(f"unknown kernel compression (payload starts {payload[:6].hex()})")


def _decompress(kind: str, payload: bytes) -> bytes:
    if kind == "gzip":
        return gzip.decompress(payload)
    if kind == "xz":
        return lzma.decompress(payload)
    tool = {"lz4": ["lz4", "-dc"], "zstd": ["zstd", "-dcq"]}[kind]
    ensure_tool(tool[0], kind)
    proc = subprocess.run(tool, input=payload, capture_output=True)
    if not proc.stdout.startswith(b"\x7fELF"):
        raise BackendError(f"cannot decompress the {kind} kernel: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def ensure_tool(command: str, package: str) -> None:
    """A Debian tool the image build needs, installed with apt when missing (as the project's tests do)."""
    if shutil.which(command):
        return
    subprocess.run([*APT_INSTALL, package], capture_output=True)
    if not shutil.which(command):
        raise BackendError(f"`{command}` is needed to build the keep image: install Debian's {package} package")


# -- modules ---------------------------------------------------------------------------------------------
def modinfo(ko: bytes) -> dict[str, list[str]]:
    """The ``.modinfo`` section of a kernel module (ELF64): ``key=value`` strings separated by NULs."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2:
        raise BackendError("not an ELF64 kernel module")
    shoff, = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:  # name offset, file offset, size
        name, = struct.unpack_from("<I", ko, shoff + i * shentsize)
        offset, size = struct.unpack_from("<QQ", ko, shoff + i * shentsize + 0x18)
        return name, offset, size

    _, str_off, _ = section(shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name_off, offset, size = section(i)
        end = ko.index(b"\0", str_off + name_off)
        if ko[str_off + name_off:end] == b".modinfo":
            for item in ko[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
    return info


def module_load_order(modules_dir: Path, wanted: tuple[str, ...] = GUEST_MODULES) -> list[Path]:
    """The ``.ko`` files for ``wanted`` and everything they depend on, dependencies first."""
    if not modules_dir.is_dir():
        return []
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in modules_dir.rglob("*.ko")}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        path = index.get(name)
        if path is None:
            return  # built into this kernel
        for dep in modinfo(path.read_bytes()).get("depends", [""])[0].split(","):
            if dep:
                visit(dep)
        order.append(path)

    for name in wanted:
        visit(name)
    return order


def kernel_config(kernel: Kernel) -> dict[str, str]:
    if kernel.config is None:
        return {}
    out = {}
    for line in kernel.config.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            out[key] = value
    return out


def host_tsc_khz() -> int | None:
    """The host's TSC frequency, which a TCG guest must be told (its PIT calibration is unreliable)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None

