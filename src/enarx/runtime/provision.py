"""Make a decrypted package the keep's workload: its module, its own Enarx.toml, its data files.

Used by every stage that opens an encrypted package inside the keep (a push, a pull from a registry). The
plaintext lives in the keep's memory; only what wasmtime must preopen from a directory is written out, into
a private (0700) staging directory that is deleted when the keep ends. In a VM keep that directory is on
the guest's own tmpfs; a nil keep is a host process, so there it is a host directory — the host can read
it, as it can read all of a nil keep's memory (the README's security model says so). A decrypted module is
never written to, or read from, the host's module cache.

An encrypted package is its publisher's whole configuration: the host cannot replace its Enarx.toml, and
the package's ``dir`` entries (read-only) and CA bundles must name files of the package itself.
"""

from __future__ import annotations

import os
import tempfile

from enarx.errors import WorkloadError
from enarx.packaging.index import CONFIG, MODULE
from enarx.runtime.launch import Launch, StageFailure

PACKAGE_DIR = "package"


def install(launch: Launch, files: dict[str, bytearray], origin: str) -> None:
    """Install ``files`` (package path → plaintext) as the launch's workload and plan it again."""
    from enarx.runtime.stages.attest import attest
    from enarx.runtime.stages.plan import plan
    from enarx.workload import check_wasm_header

    req = launch.request
    if req.config_toml is not None:
        raise StageFailure(f"{origin} brings its own Enarx.toml: a host-side --wasmcfgfile cannot replace it")
    if req.dirs:  # checked by the host already; the keep does not rely on that
        raise StageFailure(f"{origin}: the host may not add directories to a sealed package (--dir), which could "
                           "shadow its own")
    module = files.get(MODULE)
    if module is None:
        raise StageFailure(f"{origin} has no {MODULE}")
    try:
        check_wasm_header(bytes(module[:8]), f"{origin}: {MODULE}")
    except WorkloadError as exc:
        raise StageFailure(str(exc)) from None
    config_text = None
    if CONFIG in files:
        try:
            config_text = bytes(files[CONFIG]).decode()
        except UnicodeDecodeError:
            raise StageFailure(f"{origin}: its Enarx.toml is not UTF-8") from None
    launch.staging_dir = tempfile.mkdtemp(prefix="enarx-package-")  # 0700, removed when the keep ends
    root = os.path.join(launch.staging_dir, PACKAGE_DIR)
    launch.package_files = files
    launch.request = req._replace(module_name=MODULE, config_toml=config_text,
                                  config_source=os.path.join(root, CONFIG) if config_text is not None else None,
                                  package_dir=root,  # its `dir` entries and CA bundles stay inside it
                                  cache_dir=None)  # never the host's module cache
    launch.module_bytes = module  # launch.wasm stays what the keep was measured with (the empty keep)
    plan(launch)
    config = launch.need_plan().config
    secrets = {s.path for s in config.secrets} if config is not None else set()
    _stage(launch, root, {path: data for path, data in files.items() if path not in secrets})
    _confine(launch, root, origin)
    attest(launch)  # a package that names a Steward gets the keep certified now that its config is known


def _stage(launch: Launch, root: str, files: dict[str, bytearray]) -> None:
    """The package's data files (everything but the module, the Enarx.toml and the secrets) under ``root``,
    for wasmtime to preopen; secrets stay in memory until the secrets stage."""
    try:
        os.mkdir(root, 0o700)
        for path, data in files.items():
            if path in (MODULE, CONFIG):
                continue
            target = os.path.join(root, *path.split("/"))  # paths were checked by the package index
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    except OSError as exc:
        launch.remove_staging()
        raise StageFailure(f"cannot stage the package's data files: {exc.strerror}") from None


def _confine(launch: Launch, root: str, origin: str) -> None:
    """The package's own directories, read-only, and its own CA bundles: nothing of the host's."""
    from enarx.config import ConnectFile, DirFile, ListenFile

    plan = launch.need_plan()
    if plan.config is None:
        return
    root = os.path.realpath(root)
    prefix = root + os.sep
    for entry in plan.config.files:
        paths = []
        if isinstance(entry, DirFile):
            if entry.writable:
                raise StageFailure(f"{origin}: files entry {entry.name!r}: a package's directories are read-only "
                                   "(writable = true is refused)")
            paths.append(entry.path)
        elif isinstance(entry, ListenFile) and entry.client_ca:
            paths.append(entry.client_ca)
        elif isinstance(entry, ConnectFile) and entry.ca:
            paths.append(entry.ca)
        for path in paths:
            real = os.path.realpath(path)
            if real != root and not real.startswith(prefix):
                raise StageFailure(f"{origin}: files entry {entry.name!r} names {path!r}, outside the package "
                                   "(an encrypted package may only use its own files)")
