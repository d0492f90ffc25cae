"""From a launch request to a running VM keep: image, network, attachments, memory, QEMU command line.

The inputs a confidential keep needs and Debian 12 does not ship are given by environment (or the
``enarx keep image`` options): ``ENARX_QEMU`` (QEMU ≥ 9.1 for SEV-SNP, ≥ 10.1 for TDX), ``ENARX_OVMF``
(OVMF.amdsev.fd / TDVF) and ``ENARX_KERNEL`` (a guest kernel ≥ 6.7 package or bzImage).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from enarx.backends.base import KeepProcess
from enarx.backends.vm import qemu
from enarx.config import Config
from enarx.errors import BackendError
from enarx.protocol import LaunchRequest
from enarx.runtime.hostdata import launch_binding
from enarx.workload import package_digest

BASE_MEMORY_MIB = 384  # kernel, Python, wasmtime, the keep runtime and its copies of the attachments
DEFAULT_WORKLOAD_MIB = 1024  # linear memory a workload without a limit may use
DEFAULT_BOOT_TIMEOUT = 180.0  # seconds from QEMU's start to the workload's start (TCG compiles slowly)


def boot_timeout() -> float:
    value = os.environ.get("ENARX_VM_BOOT_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_BOOT_TIMEOUT
    except ValueError:
        raise BackendError(f"ENARX_VM_BOOT_TIMEOUT={value!r}: expected seconds") from None


def launch_vm(kind: str, request: LaunchRequest, module: bytes) -> KeepProcess:
    from enarx.backends.vm import image as images
    from enarx.backends.vm import shares as virtiofs
    from enarx.backends.vm.backends import EMULATED, kvm_accel
    from enarx.backends.vm.launcher import VmKeep
    from enarx.backends.vm.listen6 import Ipv6Listeners
    from enarx.backends.vm.network import plan_forwards, relay_command, url_target
    from enarx.backends.vm.package import (
        compiled_for_guest,
        host_files,
        kvm_host_files,
        module_as_compiled,
        shared_dirs,
        tree_archive,
        volume_image,
    )
    from enarx.runtime.cachedir import default_cache_dir

    config = _config(request)
    cache = default_cache_dir()
    vm_cache = images.vm_cache()
    image = images.image_from_env()
    if image is None:
        kernel_input = os.environ.get("ENARX_KERNEL")
        if kind != "kvm" and not kernel_input:
            raise BackendError(f"a {kind} keep needs a guest kernel ≥ 6.7: set ENARX_KERNEL (see `enarx keep "
                               "image build --help`)")
        sources = images.default_sources(vm_cache, Path(kernel_input) if kernel_input else None)
        image = images.load_or_build(vm_cache, sources._replace(variant=image_variant(kind, request, config)))
    # `enarx deploy`: the registry, the Steward and the key broker of an encrypted package
    services = [url_target(u) for u in (request.package_url, request.steward_url, request.kbs_url) if u]
    forwards = plan_forwards(config, services)
    extra: list[str] = []
    if request.simulate_tee:  # the simulator's test PKI lives on the host; the guest gets a copy
        simulator = _simulator_dir(request, cache)
        request = request._replace(simulator_dir=simulator)
        extra.append(simulator)
    volumes: list[tuple[str, Path]] = []
    volume_dirs: list[str] = []
    to_share: list[tuple[str, bool]] = []
    if kind == "kvm":  # directories as read-only disks (unpacking thousands of files under TCG takes minutes);
        paths = kvm_host_files(config)  # writable ones and --dir shared live (the host is trusted in kvm's model)
        volume_dirs = [p for p in paths if os.path.isdir(p)]
        volumes = [(f"enarx-vol-{i}", volume_image(p, vm_cache)) for i, p in enumerate(volume_dirs)]
        paths = [p for p in paths if not os.path.isdir(p)]
        to_share = shared_dirs(config, request.dirs)
    else:
        paths = host_files(config, request.dirs)
    tree = tree_archive(paths + extra)
    attachments: list[tuple[str, bytes]] = [("tree", tree)] if tree else []
    if kind == "kvm" and request.cache_dir:  # the host is trusted in kvm's model: it may compile for the guest
        attachments.append(("native", compiled_for_guest(module_as_compiled(module, config), cache)))
    memory = BASE_MEMORY_MIB + _workload_mib(request, config) + 2 * sum(len(d) for _, d in attachments) // (1 << 20)
    netdev = forwards.netdev(relay_command()) if forwards.needed else None
    accel = kvm_accel() if kind == "kvm" else "kvm"
    if kind == "kvm" and accel == "tcg":
        sys.stderr.write(f"warning: the kvm keep runs under QEMU's TCG emulator ({EMULATED})\n")
        sys.stderr.flush()

    firmware = _firmware(kind)
    timeout = boot_timeout()
    listeners6 = Ipv6Listeners((item.ipv6_addr, item.host_port, item.host_addr) for item in forwards.listens
                               if item.ipv6_addr is not None)
    try:
        shares, runtime = virtiofs.start(to_share) if to_share else ([], None)  # last: nothing may fail after it
    except BaseException:
        listeners6.close()
        raise
    sent = request._replace(
        cache_dir=None, dirs=[(os.path.abspath(h), g, w) for h, g, w in request.dirs] if kind == "kvm" else [],
        config_source=os.path.abspath(request.config_source) if request.config_source else None,
        attachments=[(kind_, len(data)) for kind_, data in attachments],
        forwards=forwards.message() if forwards.needed else None,
        volumes=[(serial, directory) for (serial, _), directory in zip(volumes, volume_dirs, strict=True)],
        shares=[(share.tag, share.directory, share.writable) for share in shares])

    def argv_for(fd: int, name: str) -> list[str]:
        binary = qemu.qemu_binary(os.environ.get("ENARX_QEMU"))
        if kind == "kvm":
            machine = qemu.Machine(image.kernel, image.initrd, cmdline_for(accel), memory, fd, name, netdev, volumes,
                                   [(share.tag, share.socket) for share in shares])
            return qemu.microvm_argv(binary, machine, accel=accel)
        machine = qemu.Machine(image.bzimage, image.initrd, confidential_cmdline(), memory, fd, name, netdev)
        if kind == "sev":
            return qemu.sev_snp_argv(binary, machine, firmware,
                                     host_data=launch_binding(request, module, tree, "sev-snp"))
        return qemu.tdx_argv(binary, machine, firmware, quote_socket=os.environ.get("ENARX_TDX_QGS"),
                             mrconfigid=launch_binding(request, module, tree, "tdx"))

    return VmKeep(argv_for, request=sent, module=module, attachments=attachments, boot_timeout=timeout,
                  started_view=forwards.host_view, label=f"{kind} ({EMULATED})" if accel == "tcg" else kind,
                  on_exit=lambda: _stop_helpers(listeners6, shares, runtime))


def _stop_helpers(listeners6: Any, shares: list, runtime: Path | None) -> None:
    """What a keep's QEMU needed beside it ends with the keep: IPv6 listeners, shared-directory daemons."""
    listeners6.close()
    if runtime is not None:
        from enarx.backends.vm import shares as virtiofs

        virtiofs.stop(shares, runtime)


def image_variant(kind: str, request: LaunchRequest, config: Config | None) -> str:
    """``lite`` (no X.509, HTTP client or cryptography in the guest) for a kvm keep without sockets or attestation."""
    sockets = config is not None and any(entry.kind in ("listen", "connect") for entry in config.files)
    attests = request.simulate_tee or request.steward_url or (config is not None and config.steward)
    needs_full = kind != "kvm" or sockets or attests or request.ca_bundle_pem or request.package_url
    return "full" if needs_full else "lite"


def confidential_cmdline() -> str:
    """A confidential keep's kernel command line: measured (SEV-SNP kernel hashes, TDX RTMR), so fixed."""
    return qemu.BASE_CMDLINE


def _firmware(kind: str) -> Path:
    if kind == "kvm":
        return Path()
    value = os.environ.get("ENARX_OVMF")
    if not value or not Path(value).is_file():
        what = "OVMF.amdsev.fd (edk2 OvmfPkg/AmdSev)" if kind == "sev" else "TDVF (edk2 OvmfPkg/IntelTdx)"
        raise BackendError(f"a {kind} keep needs its firmware: set ENARX_OVMF to {what}")
    return Path(value)


def package_binding(path: str) -> dict[str, bytes]:
    """HOST_DATA and MRCONFIGID for a workload (what ``enarx run`` would bind a confidential launch to)."""
    from enarx.backends.vm.package import host_files, tree_archive
    from enarx.config.parse import load_config_and_text
    from enarx.workload import load_workload

    workload = load_workload(path)
    config, text = load_config_and_text(workload.config_path) if workload.config_path else (None, None)
    tree = tree_archive(host_files(config))
    return {"host_data": package_digest(workload.wasm, text, tree, "sha256"),
            "mrconfigid": package_digest(workload.wasm, text, tree, "sha384")}


def cmdline_for(accel: str) -> str:
    from enarx.backends.vm.kernel import host_tsc_khz

    parts = [qemu.BASE_CMDLINE, qemu.FAST_CMDLINE]
    if accel == "tcg":  # the emulated PIT makes TSC calibration unreliable: tell the guest the frequency
        khz = host_tsc_khz()
        parts.append(f"tsc_early_khz={khz} tsc=reliable" if khz else "tsc=reliable")
    return " ".join(parts)


def _simulator_dir(request: LaunchRequest, cache: Path) -> str:
    """The simulator's test PKI, made on the host first so that it persists (a Steward is told to trust it)."""
    from enarx.attestation.simulate.persistent import SimulatorPki

    directory = Path(request.simulator_dir) if request.simulator_dir else cache / "simulator"
    if request.simulate_tee in ("sev-snp", "snp"):
        SimulatorPki(directory).snp()
    else:
        SimulatorPki(directory).intel()
    return str(directory.resolve())


def _config(request: LaunchRequest) -> Config | None:
    if request.config_toml is None:
        return None
    from enarx.config import parse_config

    source = request.config_source or "Enarx.toml"
    base_dir = os.path.dirname(request.config_source) if request.config_source else None
    return parse_config(request.config_toml, source=source, base_dir=base_dir)


def _workload_mib(request: LaunchRequest, config: Config | None) -> int:
    limit = request.memory_limit if request.memory_limit is not None else (
        config.limits.memory if config is not None else None)
    return -(-limit // (1 << 20)) if limit else DEFAULT_WORKLOAD_MIB
