"""A kvm keep's writable directories, shared live with its host over virtiofs.

A read-only ``dir`` entry reaches a kvm keep as a copy (a disk image); a writable one, and ``--dir``, cannot:
what the workload writes must land in the host's directory, as it does in a nil keep. In kvm's model the
host is trusted, so the host shares the directory itself: one ``virtiofsd`` per directory (QEMU's
vhost-user file-system daemon, confined by its own sandbox to that directory), a ``vhost-user-fs-device`` in
the microVM, and the guest mounts it where the plan expects the directory. Confidential keeps never get one
(their host is not trusted, and a shared directory is the host's to read and change).

``virtiofsd`` is Debian's: ``/usr/lib/qemu/virtiofsd`` (Debian 12, in qemu-system-common; options ``-o``)
or ``/usr/libexec/virtiofsd`` (Debian 13, the Rust daemon; long options), or ``ENARX_VIRTIOFSD``. Its
namespace sandbox needs privileges: run by a user other than root, it runs in a user namespace of its own
(``unshare --user --map-root-user``), so files it creates belong to that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from enarx.errors import BackendError

VIRTIOFSD_PATHS = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")
START_TIMEOUT = 10.0


class Share(NamedTuple):
    tag: str  # the virtiofs tag the guest mounts
    directory: str
    writable: bool
    socket: Path  # the vhost-user socket QEMU connects to
    proc: subprocess.Popen


def virtiofsd_binary() -> str:
    for candidate in (os.environ.get("ENARX_VIRTIOFSD"), shutil.which("virtiofsd"), *VIRTIOFSD_PATHS):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BackendError("a kvm keep shares writable directories (and --dir) through virtiofsd, which is not "
                       "installed: install Debian's virtiofsd (Debian 13) or qemu-system-common (Debian 12), or "
                       "set ENARX_VIRTIOFSD")


def start(directories: list[tuple[str, bool]]) -> tuple[list[Share], Path]:
    """One running daemon per (directory, writable), each listening on its socket; and the private directory
    holding the sockets (removed by :func:`stop`)."""
    from enarx.backends.vm.launcher import _die_with_parent

    binary = virtiofsd_binary()
    runtime = Path(tempfile.mkdtemp(prefix="enarx-virtiofs-"))  # 0700: only this user reaches the sockets
    shares: list[Share] = []
    try:
        for i, (directory, writable) in enumerate(directories):
            if not os.path.isdir(directory):
                raise BackendError(f"cannot share {directory!r} with the keep: not a directory")
            socket_path = runtime / f"fs{i}.sock"
            with open(runtime / f"fs{i}.log", "wb") as log:  # a file, not a pipe nobody reads
                proc = subprocess.Popen(daemon_argv(binary, socket_path, directory, writable),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                        start_new_session=True,
                                        preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl, no locks
            shares.append(Share(f"enarx-rw-{i}", directory, writable, socket_path, proc))
        for share in shares:
            _wait_for(share)
    except BaseException:
        stop(shares, runtime)
        raise
    return shares, runtime


def daemon_argv(binary: str, socket_path: Path, directory: str, writable: bool) -> list[str]:
    """The daemon's command line, in the option syntax of the implementation found."""
    if _is_rust_daemon(binary):
        argv = [binary, f"--socket-path={socket_path}", f"--shared-dir={directory}", "--cache=never",
                "--sandbox=namespace", *([] if writable else ["--readonly"])]
    else:  # QEMU's C daemon: no read-only option (the guest mounts the share read-only)
        argv = [binary, f"--socket-path={socket_path}", "-o", f"source={directory}", "-o", "cache=none",
                "-o", "sandbox=namespace"]
    if os.geteuid() != 0:
        argv = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *argv]
    return argv


def _is_rust_daemon(binary: str) -> bool:
    try:
        text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--shared-dir" in text


def _wait_for(share: Share) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not share.socket.exists():
        if share.proc.poll() is not None or time.monotonic() > deadline:
            share.proc.kill()
            share.proc.wait()
            log = share.socket.with_suffix(".log")
            said = (log.read_text(errors="replace").strip().splitlines() if log.exists() else []) or ["no reason given"]
            raise BackendError(f"virtiofsd could not share {share.directory!r} with the keep: {said[-1][:300]}")
        time.sleep(0.01)


def stop(shares: list[Share], runtime: Path) -> None:
    """End the daemons (they also end when QEMU disconnects) and remove their sockets."""
    for share in shares:
        if share.proc.poll() is None:
            share.proc.kill()
    for share in shares:
        try:
            share.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    shutil.rmtree(runtime, ignore_errors=True)
