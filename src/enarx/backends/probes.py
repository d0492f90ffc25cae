"""Read-only facts about the machine used by the backend checks (files under /dev, /proc and /sys)."""

from __future__ import annotations

import fcntl
import functools
import os

KVM_GET_API_VERSION = 0xAE00
#: Where /dev, /proc and /sys are read from: "/" except in tests, which point it at fake trees.
root = "/"


def at(path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


@functools.cache
def cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo."""
    info: dict[str, str] = {}
    try:
        with open(at("/proc/cpuinfo")) as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def cpu_flags() -> set[str]:
    return set(cpuinfo().get("flags", "").split())


def vendor() -> str | None:
    return cpuinfo().get("vendor_id")


def exists(path: str) -> bool:
    return os.path.exists(at(path))


def read_param(path: str) -> str | None:
    try:
        with open(at(path)) as fh:
            return fh.read().strip()
    except OSError:
        return None


def kvm_api_version() -> int | None:
    try:
        fd = os.open(at("/dev/kvm"), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError:
        return None
    finally:
        os.close(fd)


def openable(path: str, flags: int = os.O_RDONLY) -> bool:
    try:
        os.close(os.open(at(path), flags | os.O_CLOEXEC))
    except OSError:
        return False
    return True
