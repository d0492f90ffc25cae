"""A VM keep's network, decided by the host from the Enarx.toml: QEMU user networking with ``restrict=on``
(the guest reaches nothing by itself), one ``hostfwd`` per ``listen`` entry and one ``guestfwd`` per host
the keep may reach (``connect`` entries and its Steward).

* ``listen``: the host listens on the entry's address and port (``port = 0``: a free port the host picks)
  and forwards to the guest, which listens on the same port (``port = 0``: ``GUEST_PORT_BASE + fd``). The
  keep's STARTED frame reports guest ports; the host reports its own. QEMU's forwarder is IPv4 only: for
  ``::`` (every address, both families, as a nil keep listens) and ``::1`` the host also listens on the IPv6
  address itself and relays each connection to the IPv4 forward (:mod:`enarx.backends.vm.listen6`).
* ``connect`` and the Steward: each (host, port) gets a guest-side address ``10.0.2.100``, ``.101``, …;
  QEMU runs ``relay.py host port`` for every connection the guest opens to it (the host resolves and
  connects). The guest resolves exactly these names (``enarx.runtime.guest.network``).
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import sys
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from enarx.config import Config, ConnectFile, ListenFile
from enarx.errors import ConfigError

GUEST_PORT_BASE = 20000
FIRST_FORWARD = ipaddress.IPv4Address("10.0.2.100")
RELAY = Path(__file__).with_name("relay.py")


class Listen(NamedTuple):
    fd: int
    guest_port: int
    host_addr: str  # IPv4: QEMU's hostfwd
    host_port: int
    ipv6_addr: str | None = None  # "::" or "::1": the host relays IPv6 connections to the IPv4 forward


class Target(NamedTuple):
    host: str
    port: int
    guest_addr: str


class Forwards(NamedTuple):
    listens: list[Listen]
    targets: list[Target]

    @property
    def needed(self) -> bool:
        return bool(self.listens or self.targets)

    def message(self) -> dict:
        """The LAUNCH ``forwards`` field the guest applies."""
        connect = [[t.host, t.port, t.guest_addr, t.port] for t in self.targets]
        return {"listen": [[item.fd, item.guest_port] for item in self.listens], "connect": connect}

    def netdev(self, relay: list[str]) -> str:
        """The ``-netdev user`` option: restricted, with exactly these forwards."""
        rules = [f"hostfwd=tcp:{_qemu_addr(item.host_addr)}:{item.host_port}-:{item.guest_port}"
                 for item in self.listens]
        rules += [f"guestfwd=tcp:{t.guest_addr}:{t.port}-cmd:{shlex.join([*relay, t.host, str(t.port)])}"
                  for t in self.targets]
        return ",".join(["user", "id=net0", "restrict=on", "ipv6=off", *rules])

    def host_view(self, listening: list) -> list:
        """STARTED's ``listening`` as the user reaches it: the host's addresses and ports."""
        by_fd = {item.fd: item for item in self.listens}
        out = []
        for item in listening:
            if isinstance(item, dict) and item.get("fd") in by_fd:
                fwd = by_fd[item["fd"]]
                item = {**item, "addr": fwd.ipv6_addr or fwd.host_addr, "port": fwd.host_port}
            out.append(item)
        return out


def relay_command() -> list[str]:
    return [sys.executable, "-I", "-S", str(RELAY)]


def plan_forwards(config: Config | None, extra: list[tuple[str, int]] = ()) -> Forwards:  # type: ignore[assignment]
    """The forwards for a package's Enarx.toml, plus ``extra`` (host, port) services the keep must reach."""
    listens: list[Listen] = []
    wanted: list[tuple[str, int]] = []
    if config is not None:
        for fd, entry in enumerate(config.files):
            if isinstance(entry, ListenFile):
                addr, ipv6 = _host_listen_addr(entry.addr)
                port = entry.port or free_port(addr, ipv6)
                listens.append(Listen(fd, entry.port or GUEST_PORT_BASE + fd, addr, port, ipv6))
            elif isinstance(entry, ConnectFile):
                wanted.append(("127.0.0.1" if entry.host == "localhost" else entry.host, entry.port))
                if entry.host == "localhost":
                    wanted.append(("localhost", entry.port))
        if config.steward:
            wanted.append(url_target(config.steward))
    wanted += list(extra)
    targets: list[Target] = []
    addresses: dict[tuple[str, int], str] = {}
    for host, port in wanted:
        key = (host.lower().strip("[]"), port)
        if key not in addresses:
            addresses[key] = str(FIRST_FORWARD + len(addresses))
            targets.append(Target(key[0], port, addresses[key]))
    if len(addresses) > 100:
        raise ConfigError("a VM keep can reach at most 100 hosts")
    return Forwards(listens, targets)


def url_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"{url!r} names no host")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _host_listen_addr(addr: str) -> tuple[str, str | None]:
    """Where the host listens for a ``listen`` entry: the IPv4 address of QEMU's forward, and the IPv6
    address the host relays from (``::``: every address of both families; ``::1``: both loopbacks)."""
    if addr in ("::", ""):
        return "0.0.0.0", "::" if ipv6_available() else None
    if addr == "::1":
        return "127.0.0.1", "::1" if ipv6_available() else None
    if addr == "0.0.0.0":
        return addr, None
    if addr == "localhost":
        return "127.0.0.1", None
    try:
        if ipaddress.ip_address(addr).version == 4:
            return addr, None
    except ValueError:
        pass
    raise ConfigError(f"listen address {addr!r}: a VM keep listens on IPv4 addresses, `::` and `::1`")


def ipv6_available() -> bool:
    """Whether this host has IPv6 at all (a host without it listens on IPv4 only, as QEMU does)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _qemu_addr(addr: str) -> str:
    return "" if addr == "0.0.0.0" else addr


def free_port(addr: str, ipv6: str | None = None) -> int:
    """A port the system says is free now, for the IPv4 address and (given) the IPv6 one too (QEMU and the
    relay bind it a moment later; a clash fails the launch)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
            if ipv6 is None:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind((ipv6, port))
                    return port
            except OSError:
                continue
    raise ConfigError(f"no port is free on both {addr} and {ipv6}")
