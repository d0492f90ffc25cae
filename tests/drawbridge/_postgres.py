"""A throwaway PostgreSQL server (Debian's, installed when missing) in a temporary directory, on loopback.

Started once per test session; each test gets its own database. As root (CI), the server runs as the
``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

APT = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_installed(package: str, probe: str) -> None:
    """Install a Debian package when its program is missing (CI machines start bare)."""
    if shutil.which(probe) or (probe == "initdb" and _bin_dir()):
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"{package} is not installed and we are not root: apt-get install {package}")
    if subprocess.run([*APT, package], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        subprocess.run([*APT, package], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        ensure_installed("postgresql", "initdb")
        bin_dir = _bin_dir()
        assert bin_dir is not None
        self.dir = Path(tempfile.mkdtemp(prefix="enarx-pg-"))
        self.port = _free_port()
        data = self.dir / "data"
        self.user = "enarx"
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        self._run(str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.log = self.dir / "postgres.log"
        for attempt in range(3):  # the free port picked may be taken before the server binds it (parallel tests)
            try:
                self._run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.log), "-w", "-t", "60", "-o",
                          f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                          "-c fsync=off -c max_connections=300", "start")
                break
            except RuntimeError as exc:
                said = self.log.read_text(errors="replace")[-1000:] if self.log.exists() else ""
                if attempt == 2:
                    raise RuntimeError(f"{exc}\n{said}") from None
                self.port = _free_port()
        self._pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._prefix, *args], capture_output=True, cwd=self.dir)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {proc.stderr.decode()[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = "db_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self._prefix, *self._pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.dir / "data" / "postmaster.pid").exists():
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
