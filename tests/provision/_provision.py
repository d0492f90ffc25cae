"""Helpers for confidential provisioning end to end: packages with a marker in their module, data and secrets,
simulated TEEs with their test roots, a keep waiting for a push, a recording network relay, strace captures."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

from conftest import ENARX
from enarx.packaging import keys, seal

MARKER = b"MARKER-7f3c2a-provisioned-plaintext"
EMPTY_KEEP = hashlib.sha384(b"").hexdigest()  # the simulated measurement of a keep started without a module
TEES = {"snp": "sev-snp", "tdx": "tdx"}


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def with_marker(wasm: bytes) -> bytes:
    """``wasm`` plus a custom section holding :data:`MARKER`: the marker is inside the workload itself."""
    name = b"enarx-test-marker"
    body = leb128(len(name)) + name + MARKER
    return wasm + b"\x00" + leb128(len(body)) + body


def keep_policy(tee: str, *, measurement: str = EMPTY_KEEP, extra: str = "") -> str:
    """The package's keep policy: the empty keep's measurement, simulated evidence allowed explicitly."""
    fact = "measurement" if tee == "snp" else "mrtd"
    return (f'allow_test_anchors = true\ntees = ["{TEES[tee]}"]\n{extra}\n'
            f'[measurements.{fact}]\nallow = ["{measurement}"]\n')


def simulator(directory: Path) -> list[str]:
    """Create the simulator's test PKIs in ``directory`` (as a keep would on first use) and the collateral a
    verifier needs for them (TCB info, QE identity, CRLs: a simulated TDX keep sends only its quote, as a real
    one does); the owner's ``--insecure-trust-anchor`` and ``--collateral`` arguments for them."""
    from enarx.attestation.simulate.persistent import SimulatorPki

    pki = SimulatorPki(directory)
    pki.snp()
    pki.intel()
    pki.write_collateral()
    args = []
    for anchor in pki.anchor_files():
        args += ["--insecure-trust-anchor", str(anchor)]
    return [*args, "--collateral", str(pki.collateral_dir)]


class Publisher:
    """A publisher's key pair in ``directory``."""

    def __init__(self, directory: Path, name: str = "publisher"):
        self.key_path = directory / f"{name}.key"
        self.pub_path = keys.generate_signing_key(self.key_path)

    def seal(self, source: Path, out: Path, policy: str, resource: str | None = None) -> seal.SealedPackage:
        return seal.seal_package(source, out, sign_key=keys.load_signing_key(self.key_path), policy=policy,
                                 resource=resource)


def package_dir(root: Path, wasm: Path | bytes, *, config: str | None = None,
                files: dict[str, bytes] | None = None) -> Path:
    """A plaintext package directory: the module (with the marker), an Enarx.toml, data files."""
    root.mkdir(parents=True)
    module = wasm if isinstance(wasm, bytes) else wasm.read_bytes()
    (root / "main.wasm").write_bytes(with_marker(module))
    if config is not None:
        (root / "Enarx.toml").write_text(config)
    for path, data in (files or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


class WaitingKeep:
    """``enarx run --await-push 127.0.0.1:0 …`` in a subprocess (optionally under strace); ``port`` is where
    the host waits. Its stdout goes to a file, so the host writes the workload's output itself."""

    def __init__(self, tmp: Path, tee: str, sim: Path, *, publisher: Path | None = None, args: tuple = (),
                 strace: Path | None = None, env: dict[str, str] | None = None):
        self.stdout_path = tmp / f"keep-{id(self)}.out"
        command = [*ENARX, "run", "--await-push", "127.0.0.1:0", "--simulate-tee", TEES[tee],
                   "--simulator-pki", str(sim)]
        if publisher is not None:
            command += ["--publisher-key", str(publisher)]
        command += list(map(str, args))
        if strace is not None:
            command = [*strace_command(strace), *command]
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(command, stdout=self._out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})})
        self.stderr_lines: list[str] = []
        self.port = self._announced_port()

    def _announced_port(self) -> int:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr_lines.append(line)
            found = re.search(r"waiting for a push on [^ ]*:(\d+)", line)
            if found:
                return int(found.group(1))
        self.proc.wait(10)
        raise AssertionError(f"the keep never announced its port: {''.join(self.stderr_lines)}")

    def wait(self, timeout: float = 240) -> tuple[int, bytes, str]:
        """(exit status, stdout, stderr)."""
        assert self.proc.stderr is not None
        rest = self.proc.stderr.read().decode(errors="replace")
        status = self.proc.wait(timeout)
        self._out.close()
        return status, self.stdout_path.read_bytes(), "".join(self.stderr_lines) + rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


class RecordingRelay:
    """The network between owner and host: copies bytes both ways, one connection, and keeps them all."""

    def __init__(self, port: int):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.seen = bytearray()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                with self._lock:
                    self.seen += data
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _run(self) -> None:
        owner, _ = self.listener.accept()
        host = socket.create_connection(("127.0.0.1", self.target))
        pumps = [threading.Thread(target=self._pump, args=pair, daemon=True)
                 for pair in ((owner, host), (host, owner))]
        for p in pumps:
            p.start()
        for p in pumps:
            p.join(240)
        owner.close()
        host.close()


def push_cli(port: int, pkg: seal.SealedPackage, publisher: Publisher, anchors: list[str], tmp: Path,
             policy: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """The owner's ``enarx push`` of ``pkg`` to ``127.0.0.1:port``."""
    from conftest import enarx

    key_file = tmp / f"content-{pkg.manifest.package_id}.key"
    if not key_file.exists():
        keys.write_content_key(key_file, pkg.content_key)
    extra = []
    if policy is not None:
        (tmp / "owner-policy.toml").write_text(policy)
        extra = ["--policy", tmp / "owner-policy.toml"]
    return enarx("push", "--to", f"127.0.0.1:{port}", "--key", key_file, "--publisher-key", publisher.pub_path,
                 *anchors, *extra, pkg.directory, timeout=240)


def ensure_strace() -> None:
    if shutil.which("strace") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "strace"], check=True,
                       capture_output=True)


def strace_command(out: Path) -> list[str]:
    """Trace every byte the host process — all its threads, not its children (the keep) — reads or writes:
    files, sockets, the keep channel. ``-f`` follows threads and children; :func:`captured_bytes` keeps the
    host's threads only."""
    ensure_strace()
    return ["strace", "-f", "-o", str(out), "-qq", "-s", "100000000", "-xx", "-e", "signal=none", "-e",
            ("trace=read,write,readv,writev,pread64,pwrite64,preadv,pwritev,preadv2,pwritev2,recvfrom,sendto,recvmsg,"
             "sendmsg,recvmmsg,sendmmsg,sendfile,splice,"
             "clone,clone3")]


_LINE = re.compile(r"^(\d+) +(.*)$")


def captured_bytes(trace: Path) -> bytes:
    """Every buffer the host process's threads read or wrote, joined (strace -xx prints each byte as \\xHH).
    Threads are told from child processes by CLONE_THREAD: the forked keep and its threads are left out."""
    host: set[int] = set()
    pending_thread: dict[int, bool] = {}
    buffers = []
    for line in trace.read_text(errors="replace").splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        pid, rest = int(found.group(1)), found.group(2)
        if not host:
            host.add(pid)
        if "clone" in rest:
            if "resumed>" not in rest:
                pending_thread[pid] = "CLONE_THREAD" in rest
            result = re.search(r"\) += (\d+)$", rest)
            if result and pending_thread.pop(pid, False) and pid in host:
                host.add(int(result.group(1)))
            continue
        if pid in host:
            for match in re.finditer(r'"((?:\\x[0-9a-f]{2})+)"', rest):
                buffers.append(bytes.fromhex(match[1].replace("\\x", "")))
    return b"".join(buffers)


class Broker:
    """A key broker on loopback that trusts the simulator PKIs in ``sim`` (as `--insecure-trust-anchor` would)
    and an OIDC issuer for registrations — ``issuer`` = (URL, audience), or a loopback one of its own — with
    its decision log kept in ``log`` (a StringIO) and its keys in ``store``."""

    def __init__(self, sim: Path, store: Path | None = None, issuer: tuple[str, str] | None = None):
        import io
        import logging

        from joserfc.jwk import RSAKey
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from enarx.attestation import roots
        from enarx.attestation.collateral import from_ders
        from enarx.kbs import publisher
        from enarx.kbs.app import create_app
        from enarx.kbs.service import Broker as KeyBroker
        from enarx.kbs.service import BrokerConfig
        from enarx.kbs.store import ResourceStore
        from enarx.steward.server import BackgroundServer
        from enarx.steward.service import load_insecure_anchors

        self.oidc = None
        if issuer is None:
            self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})

            async def discovery(request):
                return JSONResponse({"issuer": self.issuer_url, "jwks_uri": self.issuer_url + "/jwks"})

            async def jwks(request):
                return JSONResponse({"keys": [{**self.key.as_dict(private=False), "kid": "k1", "alg": "RS256"}]})

            self.oidc = BackgroundServer(Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                                                           Route("/jwks", jwks)])).start()
            issuer = (f"http://127.0.0.1:{self.oidc.port}", "enarx-kbs")
        self.issuer_url, self.audience = issuer
        self.log = io.StringIO()
        handler = logging.StreamHandler(self.log)
        logging.getLogger("enarx.kbs").addHandler(handler)
        logging.getLogger("enarx.kbs").setLevel(logging.INFO)
        self._handler = handler
        from enarx.attestation.collateral import load_collateral
        from enarx.attestation.simulate.persistent import SimulatorPki

        simulator_pki = SimulatorPki(sim)
        anchors, intermediates = load_insecure_anchors(simulator_pki.anchor_files())
        config = BrokerConfig(anchors=roots.builtin_anchors(anchors),
                              collateral=from_ders(intermediates).merge(load_collateral([simulator_pki.collateral_dir])),
                              store=ResourceStore(store), publishers=publisher.make(self.issuer_url, self.audience))
        self.broker = KeyBroker(config)
        self.server = BackgroundServer(create_app(self.broker)).start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def token(self, sub: str) -> str:
        import time

        from joserfc import jwt

        now = int(time.time())
        claims = {"iss": self.issuer_url, "sub": sub, "aud": "enarx-kbs", "iat": now, "exp": now + 300}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)

    def register(self, pkg: seal.SealedPackage, sub: str) -> None:
        import base64

        import httpx

        body = {"manifest": pkg.token, "key": base64.urlsafe_b64encode(pkg.content_key).decode().rstrip("=")}
        r = httpx.post(f"{self.url}/kbs/v0/resource/{pkg.manifest.resource}", json=body,
                       headers={"Authorization": f"Bearer {self.token(sub)}"})
        assert r.status_code == 201, r.text

    def stop(self) -> None:
        import logging

        logging.getLogger("enarx.kbs").removeHandler(self._handler)
        self.server.stop()
        if self.oidc is not None:
            self.oidc.stop()
