"""A kvm keep's shared directories, host side, without booting a VM: the ``virtiofsd`` daemons the host starts
(QEMU's vhost-user connection stood in for by a plain client of the socket), what they leave behind and what
they let a guest do to the host's files."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from enarx.backends.vm import shares
from enarx.backends.vm.package import shared_dirs
from enarx.errors import BackendError

pytestmark = pytest.mark.skipif(not any(os.access(p, os.X_OK) for p in shares.VIRTIOFSD_PATHS),
                                reason="virtiofsd is not installed (tests/Makefile installs qemu-system-common)")


CAP_MKNOD = 27


def connected(share: shares.Share) -> socket.socket:
    """Connect as QEMU would: the C daemon sets up its sandbox once its one vhost-user client has come."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(share.socket))
    return client


def sandboxed_daemon(share: shares.Share) -> int:
    """The daemon process serving the guest (the C daemon's child in its own namespaces, else the daemon)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{share.proc.pid}/task/{share.proc.pid}/children").read_text().split()
        for child in children:
            try:
                root, shared = os.stat(f"/proc/{child}/root"), os.stat(share.directory)
                if (os.readlink(f"/proc/{child}/ns/pid") != os.readlink("/proc/self/ns/pid")  # its sandbox …
                        and (root.st_dev, root.st_ino) == (shared.st_dev, shared.st_ino)):  # … entered
                    return int(child)
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError(f"virtiofsd {share.proc.pid} set up no sandbox: {children}")


def daemons_of(runtime: Path) -> list[int]:
    """Live processes whose command line names a socket in ``runtime``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(runtime).encode() in cmdline and state != "Z":
            found.append(int(pid))
    return found


def test_a_read_only_share_is_read_only_on_the_host(tmp_path):
    """The C daemon has no read-only option and the guest's MS_RDONLY is the guest's own word: a guest that
    ignores it still cannot change the host's directory (the daemon serves it from a read-only mount)."""
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    started, runtime = shares.start([(str(ro), False), (str(rw), True)])
    try:
        clients = [connected(share) for share in started]
        ro_root, rw_root = (f"/proc/{sandboxed_daemon(share)}/root" for share in started)
        with pytest.raises(OSError, match="Read-only file system"):
            Path(ro_root, "planted").write_text("by a guest")
        Path(rw_root, "written").write_text("by a guest")  # the writable share is written through
        assert (rw / "written").read_text() == "by a guest"
        for client in clients:
            client.close()
    finally:
        shares.stop(started, runtime)
    assert os.listdir(ro) == []


def test_a_guest_cannot_make_device_nodes_on_the_host(tmp_path):
    """A guest that got past its workload's sandbox speaks FUSE to a daemon running as the host user (root here):
    it must not be able to plant a device node (say, the host's disk, mode 0666) in the shared directory."""
    started, runtime = shares.start([(str(tmp_path), True)])
    try:
        client = connected(started[0])
        status = Path(f"/proc/{sandboxed_daemon(started[0])}/status").read_text()
        effective = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
        assert not effective & (1 << CAP_MKNOD)
        client.close()
    finally:
        shares.stop(started, runtime)


def test_the_daemons_leave_no_file_behind(tmp_path):
    """Debian 12's daemon writes a pid file under /run/virtiofsd named after its socket and never removes it:
    one file per keep would pile up there."""
    before = set(os.listdir("/run/virtiofsd")) if os.path.isdir("/run/virtiofsd") else set()
    started, runtime = shares.start([(str(tmp_path), True)])
    client = connected(started[0])
    sandboxed_daemon(started[0])
    client.close()
    shares.stop(started, runtime)
    after = set(os.listdir("/run/virtiofsd")) if os.path.isdir("/run/virtiofsd") else set()
    assert after - before == set()
    assert not runtime.exists() and daemons_of(runtime) == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become another user")
def test_a_user_other_than_root_can_share(tmp_path, monkeypatch):
    """The daemon's command line for a user other than root works for one (here nobody)."""
    home = Path(tempfile.mkdtemp(prefix="enarx-test-nobody-"))  # pytest's own directories are root's only
    (home / "dir").mkdir()
    shutil.chown(home, "nobody")
    shutil.chown(home / "dir", "nobody")
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    argv = shares.daemon_argv(shares.virtiofsd_binary(), home / "fs.sock", str(home / "dir"), True)
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (home / "fs.sock").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (home / "fs.sock").exists(), proc.stderr.read() if proc.poll() is not None else "no socket"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(home)


HOLDER = """
import sys, socket, time
from enarx.backends.vm import shares
started, runtime = shares.start([(sys.argv[1], True)])
client = socket.socket(socket.AF_UNIX)
client.connect(str(started[0].socket))
print(runtime, flush=True)
time.sleep(600)
"""


def test_the_daemons_end_when_the_host_is_killed(tmp_path):
    """A host killed by SIGKILL cannot stop its daemons: the kernel does (PR_SET_PDEATHSIG), with the sandboxed
    child of each."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    runtime = Path(holder.stdout.readline().strip())
    deadline = time.monotonic() + 10
    while len(daemons_of(runtime)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(daemons_of(runtime)) == 2  # the daemon and its sandboxed child
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 10
    while daemons_of(runtime) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemons_of(runtime) == []
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_directory_named_twice_is_shared_once_writable_if_either_is(tmp_path):
    """Two preopens of one directory, one writable: the share must be writable, or the writable preopen fails
    in the guest (and which one wins must not depend on their order)."""
    d = str(tmp_path)
    assert shared_dirs(None, [(d, "/a", True), (d + "/", "/b", False)]) == [(d, True)]
    assert shared_dirs(None, [(d, "/b", False), (d, "/a", True)]) == [(d, True)]
    assert shared_dirs(None, [(d, "/b", False)]) == [(d, False)]


def test_an_explicit_virtiofsd_that_is_not_there_is_refused(tmp_path, monkeypatch):
    """ENARX_VIRTIOFSD names the daemon to use: a wrong one is one line, not silently another daemon."""
    monkeypatch.setenv("ENARX_VIRTIOFSD", str(tmp_path / "virtiofsd"))
    with pytest.raises(BackendError, match=r"^ENARX_VIRTIOFSD=.*virtiofsd'?: not an executable"):
        shares.virtiofsd_binary()


def test_a_share_is_ready_when_start_returns(tmp_path):
    """QEMU connects as soon as it starts: the daemon must be listening by then, not merely have bound its
    socket (a refused connection is a keep that never boots)."""
    for _ in range(5):
        started, runtime = shares.start([(str(tmp_path), True)])
        try:
            connected(started[0]).close()
        finally:
            shares.stop(started, runtime)
