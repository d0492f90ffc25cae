"""The VM keep's guest image: Debian's cloud kernel and an initramfs holding Python, wasmtime and the keep runtime.

The initramfs is built from this very installation — the interpreter running ``enarx``, the standard
library modules the keep runtime imports (found statically with :mod:`modulefinder`), the third-party
packages it needs (wasmtime, cryptography) and the ``enarx`` package — plus the shared libraries all of them
link against, the kernel modules the guest loads, and a CA bundle. Everything is compiled to unchecked-hash
``.pyc`` (no sources, nothing to recompile at boot) and written as a reproducible cpio, so the same inputs
give the same bytes (and the same SEV-SNP/TDX launch measurement).

Images are cached under ``<vm cache>/images/<key>`` (:func:`vm_cache`); the key covers every input (kernel package, interpreter,
installed distributions, the ``enarx`` sources, the CA bundle, this builder's version), so a rebuild happens
only when an input changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import NamedTuple

from enarx.backends.vm import cpio
from enarx.backends.vm.kernel import (
    Kernel,
    debian_kernel,
    ensure_tool,
    kernel_from_bzimage,
    kernel_from_deb,
    module_load_order,
)
from enarx.errors import BackendError

BUILDER_VERSION = 1
ENARX_ROOT = Path(__file__).resolve().parents[2]  # the enarx package directory
GUEST_ENTRY = "enarx/runtime/guest/init.py"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Never needed inside a keep, and large or pulling in much more (modulefinder follows every import).
EXCLUDED_MODULES = ["tkinter", "test", "unittest", "pydoc", "doctest", "pdb", "idlelib", "lib2to3", "distutils",
                    "setuptools", "pip", "_pytest", "pytest", "hypothesis", "IPython", "numpy", "click",
                    "uvicorn", "starlette", "anyio", "psycopg", "enarx.cli", "enarx.steward",
                    "enarx.backends", "xdist", "ziglang", "go"]
ALWAYS_STDLIB = ["encodings"]  # imported by the interpreter itself, by name
ALWAYS_SITE = ["_cffi_backend"]  # imported by cryptography's Rust extension, invisible to modulefinder
#: The "lite" image leaves out what only keeps with sockets or attestation import (X.509, HTTP, the keep's
#: TLS): a quarter smaller, so it unpacks and boots faster. The host picks it only for keeps that need none of that.
LITE_EXCLUDED = ["cryptography", "_cffi_backend", "urllib.request", "urllib.error", "urllib.response", "http",
                 "email", "asn1crypto", "enarx.attestation", "enarx.runtime.attest", "enarx.runtime.identity",
                 "enarx.runtime.net", "enarx.runtime.guest.network", "enarx.cabundle", "httpx", "httpcore", "h11",
                 "certifi", "idna", "sniffio", "enarx.drawbridge", "enarx.kbs"]
VARIANTS = ("full", "lite")


class Image(NamedTuple):
    directory: Path
    manifest: dict

    @property
    def kernel(self) -> Path:
        """The uncompressed ELF kernel (microVM direct boot through PVH)."""
        return self.directory / "vmlinux"

    @property
    def bzimage(self) -> Path:
        return self.directory / "bzImage"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"


class Sources(NamedTuple):
    """Where the image's parts come from, and which variant (``full`` or ``lite``) to build."""

    kernel: Kernel
    enarx_root: Path = ENARX_ROOT
    python: Path = Path(sys.executable)
    variant: str = "full"


def vm_cache() -> Path:
    """Kernels and images: ``$ENARX_VM_CACHE``, else ``vm/`` in the user's cache directory."""
    from enarx.runtime.cachedir import default_cache_dir

    env = os.environ.get("ENARX_VM_CACHE")
    return Path(env) if env else default_cache_dir() / "vm"


def image_from_env() -> Image | None:
    """``$ENARX_VM_IMAGE``: a prebuilt image directory (``enarx keep image build --out DIR``) used as is."""
    folder = os.environ.get("ENARX_VM_IMAGE")
    if not folder:
        return None
    manifest = Path(folder) / "manifest.json"
    try:
        return Image(Path(folder), json.loads(manifest.read_text()))
    except (OSError, ValueError) as exc:
        raise BackendError(f"ENARX_VM_IMAGE={folder!r} is not a keep image directory ({exc})") from None


def default_sources(cache: Path, kernel: Path | None = None) -> Sources:
    """This installation's runtime with Debian's cloud kernel, or ``kernel`` (a .deb or a bzImage)."""
    with _locked(cache):
        if kernel is None:
            return Sources(debian_kernel(cache))
        return Sources(kernel_from_deb(kernel, cache) if kernel.suffix == ".deb" else kernel_from_bzimage(kernel))


@contextlib.contextmanager
def _locked(cache: Path):
    """One builder at a time per cache (parallel test workers, concurrent `enarx run`s)."""
    import fcntl

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def image_key(sources: Sources) -> str:
    """A digest of every input, cheap enough for each launch: contents of the ``enarx`` sources, names
    (with versions) of the installed distributions, the interpreter and kernel package."""
    h = hashlib.sha256(f"builder {BUILDER_VERSION}\nkernel {sources.kernel.package}\n{sources.variant}\n".encode())
    h.update(f"python {sys.version} {os.path.realpath(sources.python)}\n".encode())
    for folder in _site_packages():
        h.update(" ".join(sorted(p for p in os.listdir(folder) if p.endswith(".dist-info"))).encode())
    for path in sorted(sources.enarx_root.rglob("*.py")):
        h.update(str(path.relative_to(sources.enarx_root)).encode() + b"\0" + path.read_bytes())
    if CA_BUNDLE.exists():
        h.update(CA_BUNDLE.read_bytes())
    return h.hexdigest()[:32]


def load_or_build(cache: Path, sources: Sources) -> Image:
    """The cached image for these sources, built first if it is not there yet."""
    folder = cache / "images" / image_key(sources)
    manifest = folder / "manifest.json"
    if manifest.exists():
        return Image(folder, json.loads(manifest.read_text()))
    with _locked(cache):
        if manifest.exists():  # built by someone else while we waited
            return Image(folder, json.loads(manifest.read_text()))
        return _build_into(folder, sources)


def _build_into(folder: Path, sources: Sources) -> Image:
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        image = build(work, sources)
        work.rename(folder)
        return Image(folder, image.manifest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def build(folder: Path, sources: Sources) -> Image:
    """Write vmlinux, bzImage, initrd.img and manifest.json into ``folder``."""
    from enarx.backends.vm.kernel import vmlinux_from_bzimage

    bzimage = sources.kernel.bzimage.read_bytes()
    (folder / "bzImage").write_bytes(bzimage)
    (folder / "vmlinux").write_bytes(vmlinux_from_bzimage(bzimage))
    entries = initramfs_entries(sources)
    with open(folder / "initrd.img", "wb") as out:
        cpio.write(out, entries)
    manifest = {
        "builder": BUILDER_VERSION,
        "kernel_package": sources.kernel.package,
        "kernel_release": sources.kernel.release,
        "variant": sources.variant,
        "python": sys.version.split()[0],
        "digests": {name: _sha256(folder / name) for name in ("vmlinux", "bzImage", "initrd.img")},
        "sizes": {name: (folder / name).stat().st_size for name in ("vmlinux", "bzImage", "initrd.img")},
        "files": len(entries),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Image(folder, manifest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- what goes in -----------------------------------------------------------------------------------------
def initramfs_entries(sources: Sources) -> list[cpio.Entry]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    pylib = f"usr/lib/{version}"
    entries: list[cpio.Entry] = [
        cpio.directory("dev"), cpio.char_device("dev/console", 5, 1), cpio.directory("proc"),
        cpio.directory("sys"), cpio.directory("run"), cpio.directory("tmp", 0o1777),
        cpio.file("init", _init_script(), 0o755),
    ]
    sources_py, elves, data = _python_payload(sources, pylib)
    entries += [cpio.file(name, pyc) for name, pyc in _compile(sources_py)]
    entries += [cpio.file(name, path.read_bytes(), 0o644) for name, path in data]
    elves[f"usr/bin/{version}"] = Path(os.path.realpath(sources.python))
    entries.append(cpio.symlink("usr/bin/python3", version))
    for name, path in _shared_libraries(list(elves.values())).items():
        elves.setdefault(name, path)
    entries += [cpio.file(name, _strip(path), 0o755) for name, path in sorted(elves.items())]
    modules = module_load_order(sources.kernel.modules)
    entries += [cpio.file(f"lib/modules/{p.name}", p.read_bytes()) for p in modules]
    layout = {"modules": [p.name for p in modules], "kernel_release": sources.kernel.release,
              "python": version}
    entries.append(cpio.file("etc/enarx/image.json", json.dumps(layout, sort_keys=True).encode()))
    if CA_BUNDLE.exists() and sources.variant == "full":
        entries.append(cpio.file("etc/ssl/certs/ca-certificates.crt", CA_BUNDLE.read_bytes()))
        entries.append(cpio.symlink("usr/lib/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt"))
    return cpio.with_parents(entries)


def _init_script() -> bytes:
    return (b"#!/usr/bin/python3 -SI\n"
            b"# The keep's PID 1: enarx.runtime.guest.init sets up the guest and serves the keep protocol.\n"
            b"from enarx.runtime.guest.init import main\n\nmain()\n")


def _site_packages() -> list[str]:
    return [p for p in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
            if os.path.isdir(p)]


def _python_payload(sources: Sources, pylib: str
                    ) -> tuple[list[tuple[str, Path]], dict[str, Path], list[tuple[str, Path]]]:
    """(python sources → image names, ELF files → image names, other data files → image names)."""
    import modulefinder

    if sources.variant not in VARIANTS:
        raise BackendError(f"unknown image variant {sources.variant!r}")
    lite = sources.variant == "lite"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dynload = Path(sysconfig.get_config_var("DESTSHARED") or stdlib / "lib-dynload")
    site = [Path(p) for p in _site_packages()]
    root = sources.enarx_root.parent
    finder = modulefinder.ModuleFinder(path=[str(root), str(stdlib), str(dynload), *map(str, site)],
                                       excludes=EXCLUDED_MODULES + (LITE_EXCLUDED if lite else []))
    finder.run_script(str(sources.enarx_root / "runtime" / "guest" / "init.py"))
    for name in ALWAYS_STDLIB + ([] if lite else ALWAYS_SITE):
        finder.import_hook(name)
    py: dict[str, Path] = {}
    elves: dict[str, Path] = {}
    data: list[tuple[str, Path]] = []
    packages: set[Path] = set()
    for module in finder.modules.values():
        if not module.__file__:
            continue
        path = Path(module.__file__).resolve()
        for folder in site:
            if path.is_relative_to(folder):  # third-party: the whole top-level package, with its data
                top = folder / path.relative_to(folder).parts[0]
                packages.add(top)
                break
        else:
            if path.is_relative_to(dynload):
                elves[f"{pylib}/lib-dynload/{path.name}"] = path
            elif path.suffix == ".py" and path.is_relative_to(stdlib):
                py[f"{pylib}/{path.relative_to(stdlib).with_suffix('.pyc')}"] = path
            elif path.suffix == ".py" and path.is_relative_to(root):
                py[f"{pylib}/{path.relative_to(root).with_suffix('.pyc')}"] = path
    for name in ALWAYS_STDLIB:
        for path in (stdlib / name).rglob("*.py"):
            py[f"{pylib}/{path.relative_to(stdlib).with_suffix('.pyc')}"] = path
    for top in sorted(packages):
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyi", ".typed"):
                continue
            name = f"{pylib}/{path.relative_to(top.parent)}"
            if path.suffix == ".py":
                py[name[:-3] + ".pyc"] = path
            elif path.suffix == ".so":
                elves[name] = path
            else:
                data.append((name, path))
    return sorted(py.items(), key=lambda item: item[0]), elves, sorted(data)


def _compile(sources: list[tuple[str, Path]]) -> list[tuple[str, bytes]]:
    """Unchecked-hash pycs, compiled by a fresh isolated interpreter (reproducible; see pycompile.py)."""
    script = Path(__file__).with_name("pycompile.py")
    with tempfile.TemporaryDirectory(prefix="enarx-pyc-") as out:
        jobs = [[str(path), "/" + name[:-1]] for name, path in sources]  # the name tracebacks show: the .py
        proc = subprocess.run([sys.executable, "-I", "-S", str(script), out], input=json.dumps(jobs).encode(),
                              capture_output=True)
        if proc.returncode != 0:
            raise BackendError(f"cannot compile the keep runtime: {proc.stderr.decode(errors='replace')[-500:]}")
        return [(name, Path(out, f"{i}.pyc").read_bytes()) for i, (name, _) in enumerate(sources)]


def _shared_libraries(elves: list[Path]) -> dict[str, Path]:
    """Every shared library the ELF files load (``ldd``), at the path the guest's loader searches."""
    libs: dict[str, Path] = {}
    for elf in elves:
        proc = subprocess.run(["ldd", str(elf)], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                libs[f"lib/x86_64-linux-gnu/{parts[0]}"] = Path(os.path.realpath(parts[2]))
            elif parts and parts[0].startswith("/") and "ld-linux" in parts[0]:
                libs[parts[0].lstrip("/")] = Path(os.path.realpath(parts[0]))
    return libs


def _strip(path: Path) -> bytes:
    """The ELF file without symbols and debug information (the guest never debugs it; a third of the size)."""
    ensure_tool("strip", "binutils")
    with tempfile.NamedTemporaryFile(prefix="enarx-strip-") as tmp:
        proc = subprocess.run(["strip", "--strip-unneeded", "-o", tmp.name, str(path)], capture_output=True)
        if proc.returncode != 0:
            return path.read_bytes()
        return Path(tmp.name).read_bytes()
