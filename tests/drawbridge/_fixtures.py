"""Fixtures for the registry tests (imported by each test module): a private TLS CA, a loopback OIDC issuer, Drawbridge server processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pki import PrivateCa
from oidc_issuer import LoopbackIssuer

from conftest import ENARX, enarx

ANNOUNCE = re.compile(r"listening on https://([^/]+)/")


class Pki:
    def __init__(self, directory: Path):
        self.ca = PrivateCa("Drawbridge Test CA")
        self.ca_pem = self.ca.write(directory / "ca.pem")
        self.crt, self.key = self.ca.leaf(directory, "drawbridge")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def issuer() -> Iterator[LoopbackIssuer]:
    server = LoopbackIssuer()
    yield server
    server.stop()


class Drawbridge:
    """A real `enarx drawbridge serve` process."""

    def __init__(self, pki: Pki, issuer: LoopbackIssuer | None, *, store: Path | None = None, database: str | None = None,
                 keep_ca: Path | None = None, log: Path | None = None, extra: tuple[str, ...] = ()):
        args = [*ENARX, "drawbridge", "serve", "--addr", "127.0.0.1", "--port", "0", "--tls-crt", pki.crt,
                "--tls-key", pki.key]
        if store is not None:
            args += ["--store", store]
        if database is not None:
            args += ["--database", database]
        if issuer is not None:
            args += ["--oidc-issuer", issuer.url, "--oidc-audience", issuer.audience]
        if keep_ca is not None:
            args += ["--ca", keep_ca]
        args += list(extra)
        self.log = log
        self.proc = subprocess.Popen([str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.host = self._wait()

    def _wait(self) -> str:
        assert self.proc.stderr is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            lines.append(line)
            match = ANNOUNCE.search(line)
            if match:
                return match[1]
        self.proc.kill()
        raise AssertionError(f"drawbridge did not start: {''.join(lines)}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_drawbridge(pki: Pki, issuer: LoopbackIssuer, tmp_path: Path) -> Iterator:
    started: list[Drawbridge] = []

    def start(**kw) -> Drawbridge:
        if "store" not in kw and "database" not in kw:
            kw["store"] = tmp_path / f"store{len(started)}"
            kw["store"].mkdir()
        server = Drawbridge(pki, kw.pop("issuer", issuer), **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def cli(*args, token: str | None = None, ca: Path | None = None, env: dict | None = None, **kw):
    """The real CLI with the registry's CA (and a token) in the environment."""
    full = dict(env or {})
    if ca is not None:
        full["ENARX_CA_BUNDLE"] = str(ca)
    if token is not None:
        full["ENARX_INSECURE_AUTH_TOKEN"] = token
    full.setdefault("XDG_CONFIG_HOME", os.environ.get("XDG_CONFIG_HOME", "/nonexistent-enarx-config"))
    return enarx(*args, env=full, **kw)


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    from _postgres import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()


def store_kwargs(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict:
    """``store=`` or ``database=`` for a fresh, empty registry on ``backend`` (sqlite or postgres)."""
    if backend == "postgres":
        return {"database": request.getfixturevalue("postgres").new_database()}
    store = tmp_path / f"store-{time.monotonic_ns()}"
    store.mkdir()
    return {"store": store}
