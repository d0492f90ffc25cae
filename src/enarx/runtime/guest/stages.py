"""Stages only a guest runs, around the common ones (see :func:`guest_stages`).

* :func:`bind_workload` — a confidential guest checks that its launch (HOST_DATA / MRCONFIGID) names the
  package it received.
* :func:`mount_volumes` — a kvm keep's read-only ``dir`` entries arrive as disks, mounted in place.
* :func:`mount_shares` — a kvm keep's writable ``dir`` entries and ``--dir`` are the host's own directories,
  shared over virtiofs.
* :func:`unpack_tree` — before planning: the host files the package names (read-only ``dir`` entries, CA
  bundles) arrive as a tar attachment; they are unpacked under :data:`HOST_ROOT`, never over the guest's
  own files.
* :func:`relocate` — after planning: the plan's host paths point into :data:`HOST_ROOT`.
* :func:`connect_network` — the network, the resolver and the guest-side ports of ``listen`` entries.
* :func:`accept_native` — a ``kvm`` guest may use the module the host precompiled (the host is trusted
  in kvm's model); a confidential guest (SEV-SNP, TDX) never loads native code from the host.
"""

from __future__ import annotations

import io
import os

from enarx.runtime import stages
from enarx.runtime.launch import Launch, StageFailure

HOST_ROOT = "/run/enarx/host"


def bind_workload(launch: Launch, tsm=None, device=None) -> None:
    """A confidential guest refuses to run a workload other than the one its launch was bound to: the
    package digest of what it received (or, for a package it fetches or is pushed, the tag or publisher its
    launch request names, which it then holds the package to) must equal HOST_DATA (SEV-SNP) / MRCONFIGID
    (TDX) in its own report, which the host set when it launched the machine and the Steward sees in the
    evidence (:func:`enarx.runtime.hostdata.launch_binding`)."""
    if not confidential_guest():
        return
    import hmac

    from enarx.runtime.attest.evidence import SevGuestDevice, TsmReport
    from enarx.runtime.hostdata import launch_binding

    tsm = tsm or TsmReport()
    try:
        if tsm.root.is_dir():
            provider, report, _aux = tsm.get(bytes(64))
        else:
            provider, report = "sev_guest", (device or SevGuestDevice()).get(bytes(64))[0]
        if provider == "sev_guest":
            from enarx.attestation.snp.abi import parse_report

            bound, tee = parse_report(report).host_data, "sev-snp"
        elif provider == "tdx_guest":
            from enarx.attestation.intel.abi import parse_quote

            bound, tee = parse_quote(report).body.mrconfigid, "tdx"
        else:
            raise StageFailure(f"unknown confidential computing report provider {provider!r}")
    except StageFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - KeepError, malformed evidence: one reason, the keep stops
        raise StageFailure(f"cannot read this keep's own launch report: {exc}") from None
    try:
        received = launch_binding(launch.request, launch.wasm, launch.attachments.get("tree", b""), tee)
    except Exception as exc:  # noqa: BLE001 - a malformed bound tag entry or publisher key: one reason
        raise StageFailure(f"cannot tell what this keep's launch should be bound to: {exc}") from None
    if not hmac.compare_digest(bound, received):
        raise StageFailure(f"the host launched this keep for another workload (launch data {bound.hex()}, "
                           f"received package {received.hex()})")


def unpack_tree(launch: Launch) -> None:
    tree = launch.attachments.pop("tree", None)
    if tree is None:
        return
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(tree), mode="r:") as archive:
            archive.extractall(HOST_ROOT, filter="data")  # no absolute paths, no escapes, no devices
    except (tarfile.TarError, OSError) as exc:
        raise StageFailure(f"cannot unpack the package files the host sent: {exc}") from None


def mount_volumes(launch: Launch) -> None:
    """A kvm keep's read-only ``dir`` entries arrive as virtio disks; each is mounted where its host
    directory belongs (the disk's serial names it)."""
    volumes = launch.request.volumes
    if not volumes:
        return
    if confidential_guest():
        raise StageFailure("a confidential keep mounts no disks from its host: its files come with the package")
    import time

    from enarx.runtime.guest.init import MS_RDONLY, load_disk_modules, mount

    load_disk_modules()
    wanted = dict(volumes)
    deadline = time.monotonic() + 10
    while wanted:
        for dev in sorted(os.listdir("/sys/block")):
            try:
                with open(f"/sys/block/{dev}/serial") as fh:
                    serial = fh.read().strip()
            except OSError:
                continue
            if serial in wanted:
                target = host_path(wanted.pop(serial))
                os.makedirs(target, exist_ok=True)
                try:
                    mount(f"/dev/{dev}", target, "ext4", MS_RDONLY)
                except OSError as exc:
                    raise StageFailure(f"cannot mount the copy of {target[len(HOST_ROOT):]!r}: {exc}") from None
        if wanted and time.monotonic() > deadline:
            raise StageFailure(f"the disks for {', '.join(wanted.values())} did not appear")
        if wanted:
            time.sleep(0.01)


def mount_shares(launch: Launch) -> None:
    """A kvm keep's writable ``dir`` entries (and ``--dir``) are the host's directories themselves, shared
    over virtiofs (the host is trusted in kvm's model); each is mounted where its host directory belongs."""
    shares = launch.request.shares
    if not shares:
        return
    if confidential_guest():
        raise StageFailure("a confidential keep shares no directory with its host: its files come with the package")
    from enarx.runtime.guest.init import MS_RDONLY, load_share_modules, mount

    try:
        load_share_modules()
    except OSError as exc:
        raise StageFailure(f"cannot load the shared-directory drivers: {exc}") from None
    for tag, directory, writable in shares:
        target = host_path(directory)
        os.makedirs(target, exist_ok=True)
        try:
            mount(tag, target, "virtiofs", 0 if writable else MS_RDONLY)
        except OSError as exc:
            raise StageFailure(f"cannot mount the host's {directory!r}: {exc}") from None


def host_path(path: str) -> str:
    """Where a host path of the package lives in the guest."""
    return os.path.join(HOST_ROOT, os.path.abspath(path).lstrip("/"))


def relocate(launch: Launch) -> None:
    from enarx.config import ConnectFile, ListenFile
    from enarx.runtime.plan import Preopen

    req = launch.request
    if req.simulate_tee and confidential_guest():
        raise StageFailure("a confidential keep attests with its own evidence, never simulated evidence")
    if req.simulator_dir:
        launch.request = req._replace(simulator_dir=host_path(req.simulator_dir))
    plan = launch.need_plan()
    shared = {os.path.abspath(directory) for _tag, directory, writable in req.shares if writable}
    for pre in plan.preopens:
        if pre.writable and os.path.abspath(pre.host) not in shared:
            raise StageFailure(f"directory {pre.host!r} is writable, but a VM keep only gets a copy of it: "
                               "make the `dir` entry read-only")
    plan.preopens = [Preopen(host_path(p.host), p.guest, p.writable) for p in plan.preopens]
    moved: list[tuple[int, ListenFile | ConnectFile]] = []
    for fd, entry in plan.sockets:
        if isinstance(entry, ListenFile) and entry.client_ca:
            entry = entry._replace(client_ca=host_path(entry.client_ca))
        elif isinstance(entry, ConnectFile) and entry.ca:
            entry = entry._replace(ca=host_path(entry.ca))
        moved.append((fd, entry))
    plan.sockets = moved


def connect_network(launch: Launch) -> None:
    forwards = launch.request.forwards
    plan = launch.need_plan()
    if not forwards:  # the host sends forwards only to a keep that has a network
        return
    from enarx.config import ListenFile
    from enarx.runtime.guest import network
    try:
        network.bring_up()
    except OSError as exc:
        raise StageFailure(f"cannot bring up the keep's network: {exc}") from None
    routes: dict[tuple[str, int], tuple[str, int]] = {}
    for host, port, guest_addr, guest_port in forwards.get("connect", []):
        routes[(host.lower().strip("[]"), port)] = (guest_addr, guest_port)
    network.install_resolver(routes)
    ports = {fd: port for fd, port in forwards.get("listen", [])}
    plan.sockets = [(fd, entry._replace(addr="0.0.0.0", port=ports.get(fd, entry.port)))
                    if isinstance(entry, ListenFile) else (fd, entry) for fd, entry in plan.sockets]


def accept_native(launch: Launch) -> None:
    native = launch.attachments.pop("native", None)
    if native is not None and not confidential_guest():
        launch.native = native


def confidential_guest() -> bool:
    """Whether this guest runs on SEV-SNP or TDX (their guest devices or a configfs TSM provider exist)."""
    return any(os.path.exists(p) for p in ("/dev/sev-guest", "/dev/tdx_guest", "/sys/kernel/config/tsm/report"))


def guest_stages() -> tuple[stages.Stage, ...]:
    """The common set-up stages with the guest's own around them."""
    order = stages.with_stage(stages.SETUP, relocate, after=stages.plan)
    order = stages.with_stage(order, connect_network, after=relocate)
    order = stages.with_stage(order, accept_native, after=stages.open_sockets)
    return (bind_workload, mount_volumes, mount_shares, unpack_tree, *order)
