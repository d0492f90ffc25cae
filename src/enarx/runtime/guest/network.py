"""The guest's network: one virtio-net interface on QEMU's user-mode network, and a resolver that knows
exactly the hosts the keep may reach.

The host forwards each ``listen`` port to the guest (the guest listens on all its addresses: the only
other end of its network is the host's forwarder) and maps each reachable host and port (``connect``
entries, the Steward) to a guest-side address that QEMU relays to the real one. The keep's code still
connects to the *names* in its Enarx.toml — so TLS checks the real server name — and :func:`install_resolver`
turns each name into its guest-side address. Any other name does not resolve.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

GUEST_ADDRESS = "10.0.2.15"
NETMASK = "255.255.255.0"
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
IFF_UP, IFF_RUNNING = 0x1, 0x40


def _ifreq_addr(name: str, address: str) -> bytes:
    return struct.pack("16sH2s4s8s", name.encode(), socket.AF_INET, b"", socket.inet_aton(address), b"")


def interface_up(name: str, address: str | None = None, netmask: str | None = None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if address is not None:
            fcntl.ioctl(s, SIOCSIFADDR, _ifreq_addr(name, address))
        if netmask is not None:
            fcntl.ioctl(s, SIOCSIFNETMASK, _ifreq_addr(name, netmask))
        flags = struct.unpack_from("H", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14s", name.encode(), 0, b"")),
                                   16)[0]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", name.encode(), flags | IFF_UP | IFF_RUNNING, b""))


def bring_up() -> None:
    """Loopback, and the virtio-net interface at the address QEMU's user network expects."""
    from enarx.runtime.guest.init import load_network_modules

    load_network_modules()
    interface_up("lo")
    for name in sorted(os.listdir("/sys/class/net")):
        if name != "lo":
            interface_up(name, GUEST_ADDRESS, NETMASK)
            return
    raise OSError("the keep has no network interface")


def install_resolver(routes: dict[tuple[str, int], tuple[str, int]]) -> None:
    """Resolve exactly ``routes`` ((host, port) → (guest-side address, port)); binding (passive) lookups
    are left alone. Everything else fails like an unknown name, naming the reason."""
    original = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host is None or flags & socket.AI_PASSIVE:
            return original(host, port, family, type, proto, flags)
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            key = (name.lower().strip("[]"), int(port or 0))
        except (TypeError, ValueError):
            key = (name.lower(), -1)
        target = routes.get(key)
        if target is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}:{port} is not reachable from this keep")
        return original(target[0], target[1], family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
