"""PID 1 of a VM keep: mount the kernel's filesystems, load the virtio drivers, and serve the keep.

The kernel runs ``/init`` (``python3 -SI``), which calls :func:`main`. The keep speaks to the host over the
virtio-serial port named ``org.enarx.keep.0``; when it ends, the machine powers off (the host learns the
workload's status from the EXIT frame, never from the machine). Anything unexpected is printed on the
console (the host keeps its last lines for the crash report) and the machine powers off as well.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC
SYS_FINIT_MODULE = 313  # x86_64
IMAGE_LAYOUT = "/etc/enarx/image.json"
MODULES_DIR = "/lib/modules"
#: Loaded only when needed: the network (listen/connect sockets, a Steward), disks (a kvm keep's read-only
#: dirs) and shared directories (its writable ones, over virtiofs).
NET_MODULES = frozenset({"virtio_net.ko", "net_failover.ko", "failover.ko"})
DISK_MODULES = frozenset({"virtio_blk.ko"})
SHARE_MODULES = frozenset({"fuse.ko", "virtiofs.ko"})
MS_RDONLY = 1

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str, flags: int = 0) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype} on {target}: {os.strerror(errno)}")


def load_modules(names: list[str]) -> None:
    for name in names:
        fd = os.open(os.path.join(MODULES_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.syscall(SYS_FINIT_MODULE, fd, b"", 0) != 0:
                errno = ctypes.get_errno()
                if errno not in (17, 19):  # EEXIST: already loaded; ENODEV: no such device here (sev-guest…)
                    raise OSError(errno, f"cannot load {name}: {os.strerror(errno)}")
        finally:
            os.close(fd)


def image_modules() -> list[str]:
    with open(IMAGE_LAYOUT) as fh:
        return json.load(fh)["modules"]


def power_off(_status: int = 0) -> None:
    """End the keep: the machine powers off (the status already went to the host in the EXIT frame)."""
    sys.stdout.flush()
    sys.stderr.flush()
    _libc.reboot(LINUX_REBOOT_CMD_POWER_OFF)
    os._exit(0)  # not reached: PID 1 exiting would panic the kernel, which also ends the machine


def main() -> None:
    try:
        mount("proc", "/proc", "proc")
        mount("sysfs", "/sys", "sysfs")
        mount("devtmpfs", "/dev", "devtmpfs")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"/dev/{name}")  # wasmtime opens the keep's pipes as /dev/fd/N
        try:
            mount("configfs", "/sys/kernel/config", "configfs")  # configfs TSM (SEV-SNP/TDX evidence)
        except OSError:
            pass  # a kernel without configfs
        load_modules([m for m in image_modules() if m not in NET_MODULES | DISK_MODULES | SHARE_MODULES])
        from enarx.runtime.guest.port import open_port
        from enarx.runtime.guest.stages import guest_stages
        from enarx.runtime.keep import Keep

        Keep(open_port(), stages=guest_stages(), exit=power_off).serve()  # type: ignore[arg-type]
    except BaseException:  # noqa: BLE001 - PID 1 must never return: report on the console, then power off
        import traceback

        traceback.print_exc()
    power_off()


def load_network_modules() -> None:
    load_modules([m for m in image_modules() if m in NET_MODULES])


def load_disk_modules() -> None:
    load_modules([m for m in image_modules() if m in DISK_MODULES])


def load_share_modules() -> None:
    load_modules([m for m in image_modules() if m in SHARE_MODULES])
