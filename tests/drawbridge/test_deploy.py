"""`enarx deploy`: every example language by slug; a private package fetched by an attested keep (simulated
SEV-SNP) whose host never sees a byte of it — checked on a capture of everything the host process reads and
writes, the host↔keep channel included; keeps refused by the repository's keep policy."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from _fixtures import Drawbridge, cli, issuer, pki
from _postgres import ensure_installed

from conftest import ENARX, LANGUAGES, example
from enarx.attestation.policy import Policy
from enarx.attestation.simulate.persistent import SimulatorPki
from enarx.steward.app import create_app
from enarx.steward.issuer import CertificateAuthority
from enarx.steward.server import BackgroundServer
from enarx.steward.service import Steward, StewardConfig, load_insecure_anchors

MARKER = b"PRIVATE-MARKER-7f3a9c1e-never-on-the-host"


class World:
    """A Steward trusting the simulator's test root, and a registry whose keeps are that Steward's."""

    def __init__(self, work: Path, pki, issuer):
        self.work = work
        self.pki = pki
        self.simulator = work / "simulator"
        simulator = SimulatorPki(self.simulator)
        simulator.write_collateral()  # SEV-SNP and Intel test PKIs, and the collateral a Steward needs for TDX
        anchors, intermediates = load_insecure_anchors(simulator.anchor_files())
        self.steward_ca = CertificateAuthority.generate("Deploy Test Steward")
        steward = Steward(StewardConfig(ca=self.steward_ca, policy=Policy.default(), policy_name="deploy-test",
                                        insecure_anchors=anchors, insecure_intermediates=intermediates,
                                        collateral=[self.simulator / "collateral"]))
        crt, key = pki.ca.leaf(work, "steward")  # the Steward over TLS under the private CA: --ca-bundle covers it
        self.steward = BackgroundServer(create_app(steward), tls_crt=str(crt), tls_key=str(key)).start()
        self.steward_url = f"https://127.0.0.1:{self.steward.port}/"
        keep_ca = work / "steward-ca.pem"
        keep_ca.write_bytes(self.steward_ca.pem)
        store = work / "store"
        store.mkdir()
        self.registry = Drawbridge(pki, issuer, store=store, keep_ca=keep_ca)
        self.host = self.registry.host
        self.token = issuer.mint("alice-sub")
        for args in (("user", "register", f"{self.host}/alice"), ("repo", "register", f"{self.host}/alice/pub")):
            assert self.cli(*args).returncode == 0

    def cli(self, *args, **kw) -> subprocess.CompletedProcess[bytes]:
        return cli(*args, token=self.token, ca=self.pki.ca_pem, **kw)

    def private_repo(self, name: str, policy: str) -> None:
        path = self.work / f"{name}.toml"
        path.write_text(policy)
        result = self.cli("repo", "register", "--private", "--keep-policy", path, f"{self.host}/alice/{name}")
        assert result.returncode == 0, result.stderr

    def stop(self) -> None:
        self.registry.stop()
        self.steward.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki, issuer):
    world = World(tmp_path_factory.mktemp("deploy"), pki, issuer)
    yield world
    world.stop()


@pytest.mark.parametrize("lang", [*LANGUAGES, "cpp"])
def test_deploy_each_language_by_slug(world: World, lang: str) -> None:
    module = example(lang, "hello")
    slug = f"{world.host}/alice/pub:0.{LANGUAGES.index(lang) + 1 if lang in LANGUAGES else 9}.0"
    published = world.cli("package", "publish", slug, module)
    assert published.returncode == 0, published.stderr
    expected = subprocess.run([*ENARX, "run", str(module)], capture_output=True, timeout=120)
    deployed = cli("deploy", slug, ca=world.pki.ca_pem)  # a public package: no token needed
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout == expected.stdout and b"ello" in deployed.stdout


def test_deploy_cpython_package_by_slug(world: World) -> None:
    """CPython as a package: the interpreter, its standard library (one zip) and the app, published and deployed
    by name; the keep's output is the local run's (arguments, preopened names, the SHA-256 of its stdin)."""
    package = example("python", "main").parent
    slug = f"{world.host}/alice/pub:3.11.0"
    published = world.cli("package", "publish", slug, package)
    assert published.returncode == 0, published.stderr
    data = b"stdin for CPython\n" * 100
    local = subprocess.run([*ENARX, "run", str(package), "extra"], input=data, capture_output=True, timeout=180)
    deployed = cli("deploy", slug, "extra", ca=world.pki.ca_pem, input=data, timeout=180)
    assert deployed.returncode == local.returncode == 0, deployed.stderr
    assert deployed.stdout == local.stdout
    assert b'"greeting": "Hello from Python in a keep!"' in deployed.stdout
    assert hashlib.sha256(data).hexdigest().encode() in deployed.stdout


def test_deploy_a_package_directory_with_data_files(world: World, tmp_path: Path) -> None:
    """files.wasm writes /data/hello.txt, reads it back and lists /data: the package's data file is there."""
    package = tmp_path / "pkg"
    (package / "data").mkdir(parents=True)
    shutil.copy(example("c", "files"), package / "main.wasm")
    (package / "data" / "from-the-package.txt").write_text("data file\n")
    (package / "Enarx.toml").write_text('args = ["/data"]\n[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n'
                                        '[[files]]\nkind = "stderr"\n[[files]]\nkind = "dir"\npath = "data"\n'
                                        'name = "/data"\nwritable = true\n')
    assert world.cli("package", "publish", f"{world.host}/alice/pub:2.0.0", package).returncode == 0
    local = subprocess.run([*ENARX, "run", str(shutil.copytree(package, tmp_path / "copy"))], capture_output=True,
                           timeout=120)
    deployed = cli("deploy", f"{world.host}/alice/pub:2.0.0", ca=world.pki.ca_pem)
    assert deployed.returncode == local.returncode == 0, deployed.stderr
    assert deployed.stdout == local.stdout
    assert b"from-the-package.txt" in deployed.stdout and b"written by wasm" in deployed.stdout


def test_deploy_https_urls(world: World) -> None:
    """A registry tag URL is resolved like a slug; any other https URL is fetched by the keep as a module."""
    slug_tag = f"https://{world.host}/api/v0.1.0/alice/pub/_tag/0.1.0"
    assert world.cli("package", "publish", f"{world.host}/alice/pub:0.1.0", example("c", "hello")).returncode in (0, 1)
    for url in (slug_tag, slug_tag + "/tree"):
        result = cli("deploy", url, ca=world.pki.ca_pem)
        assert result.returncode == 0, result.stderr
        assert b"ello" in result.stdout
    result = cli("deploy", f"http://{world.host}/x.wasm", ca=world.pki.ca_pem)
    assert result.returncode == 1 and b"over plain http" in result.stderr


def test_deploy_file_url_runs_locally(world: World) -> None:
    result = cli("deploy", f"file://{example('c', 'hello')}")
    assert result.returncode == 0 and b"ello" in result.stdout


def _private_package(directory: Path) -> Path:
    """hello.wasm carrying MARKER in a custom section, a data file holding MARKER, and an Enarx.toml."""
    wasm = example("c", "hello").read_bytes()
    name = b"enarx.marker"
    payload = bytes([len(name)]) + name + MARKER
    section = b"\x00" + _leb(len(payload)) + payload
    directory.mkdir()
    (directory / "main.wasm").write_bytes(wasm + section)
    (directory / "secret").mkdir()
    (directory / "secret" / "data.bin").write_bytes(MARKER * 100)
    (directory / "Enarx.toml").write_text('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\n'
                                          'kind = "stderr"\n[[files]]\nkind = "dir"\npath = "secret"\n'
                                          'name = "/secret"\n')
    return directory


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


KEEP_POLICY = 'tees = ["sev-snp"]\nallow_insecure = true  # simulated evidence under a test root\n'


@contextmanager
def _strace(out: Path):
    ensure_installed("strace", "strace")
    yield ["strace", "-o", str(out), "-qq", "-s", "100000000", "-xx", "-e", "signal=none", "-e",
           "trace=read,write,readv,writev,pread64,pwrite64,recvfrom,sendto,recvmsg,sendmsg,sendfile,splice"]


def _captured_bytes(trace: Path) -> list[bytes]:
    """Every buffer the traced process read or wrote (strace -xx prints each byte as \\xHH)."""
    buffers = []
    for line in trace.read_text(errors="replace").splitlines():
        for match in re.finditer(r'"((?:\\x[0-9a-f]{2})+)"', line):
            buffers.append(bytes.fromhex(match[1].replace("\\x", "")))
    return buffers


def test_private_package_never_passes_through_the_host(world: World, tmp_path: Path) -> None:
    world.private_repo("secret", KEEP_POLICY)
    package = _private_package(tmp_path / "pkg")
    slug = f"{world.host}/alice/secret:1.0.0"
    assert world.cli("package", "publish", slug, package).returncode == 0
    trace = tmp_path / "host.strace"
    stdout = tmp_path / "stdout"  # a regular file: the host writes the workload's output itself (no splice)
    keep_tmp = tmp_path / "tmp"  # where the nil keep stages the package's data files for wasmtime
    keep_tmp.mkdir()
    with _strace(trace) as strace, open(stdout, "wb") as out:
        proc = subprocess.run([*strace, *ENARX, "deploy", "--steward", world.steward_url, "--simulate-tee", "sev-snp",
                               "--simulator-pki", str(world.simulator), slug],
                              env={**_env(world), "TMPDIR": str(keep_tmp)}, stdout=out, stderr=subprocess.PIPE,
                              timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert list(keep_tmp.iterdir()) == []  # the private staging directory is gone
    assert b"ello" in stdout.read_bytes()  # the workload ran
    buffers = _captured_bytes(trace)
    assert sum(len(b) for b in buffers) > 10_000  # the capture saw the host's traffic (LAUNCH, TLS, stdout…)
    joined = b"".join(buffers)
    assert MARKER not in joined and not any(MARKER in b for b in buffers)
    assert MARKER[:16] not in joined  # not even a fragment
    # the capture does cover the host↔keep channel: the LAUNCH frame the host wrote binds the tree's digest
    from enarx.drawbridge.content import b64
    from enarx.drawbridge.tree import build_tree

    assert b64(build_tree(package)[0].entry.digests["sha-256"]).encode() in joined


def _env(world: World) -> dict[str, str]:
    import os

    return {**os.environ, "ENARX_CA_BUNDLE": str(world.pki.ca_pem), "ENARX_INSECURE_AUTH_TOKEN": world.token}


def test_a_tdx_keep_deploys_a_private_package_bound_by_mrconfigid(world: World, tmp_path: Path) -> None:
    """A TDX keep's launch binds the tag as MRCONFIGID = the tree root's SHA-384: what the registry checks."""
    world.private_repo("tdxonly", 'tees = ["tdx"]\nallow_insecure = true  # simulated evidence\n')
    slug = f"{world.host}/alice/tdxonly:1.0.0"
    assert world.cli("package", "publish", slug, _private_package(tmp_path / "pkg")).returncode == 0
    result = world.cli("deploy", "--steward", world.steward_url, "--simulate-tee", "tdx", "--simulator-pki",
                       world.simulator, slug)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Hello, world!\n"


def test_private_package_refused_to_an_unattested_keep(world: World, tmp_path: Path) -> None:
    world.private_repo("closed", KEEP_POLICY)
    slug = f"{world.host}/alice/closed:1.0.0"
    assert world.cli("package", "publish", slug, _private_package(tmp_path / "pkg")).returncode == 0
    result = world.cli("deploy", slug)
    assert result.returncode == 1
    assert b"is private: a bearer token is required (401)" in result.stderr
    assert MARKER not in result.stdout + result.stderr


@pytest.mark.parametrize(("policy", "failed"), [
    ('tees = ["tdx"]\nallow_insecure = true\n', "TEE type refused"),
    ('tees = ["sev-snp"]\n', "without hardware evidence"),
    ('tees = ["sev-snp"]\nallow_insecure = true\n[measurements.measurement]\nallow = ["' + "ab" * 48 + '"]\n',
     "measurement is not on the allow list"),
])
def test_keep_whose_claims_do_not_satisfy_the_policy_is_refused(world: World, tmp_path: Path, policy: str,
                                                                 failed: str) -> None:
    name = "p" + str(abs(hash(policy)) % 10**8)
    world.private_repo(name, policy)
    slug = f"{world.host}/alice/{name}:1.0.0"
    assert world.cli("package", "publish", slug, _private_package(tmp_path / "pkg")).returncode == 0
    result = world.cli("deploy", "--steward", world.steward_url, "--simulate-tee", "sev-snp", "--simulator-pki",
                       world.simulator, slug)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "the keep does not satisfy the repository's keep policy" in err and failed in err, err
    assert "(403)" in err
    assert MARKER not in result.stdout + result.stderr


def test_an_sgx_keep_is_refused_a_private_tag_because_it_cannot_be_bound(world: World, tmp_path: Path) -> None:
    """SGX has no launch-time host data: its evidence cannot name the tag, so the registry refuses it, and the
    user is told that in one line (not a silent success, not a traceback)."""
    world.private_repo("sgxonly", 'tees = ["sgx"]\nallow_insecure = true  # simulated evidence\n')
    slug = f"{world.host}/alice/sgxonly:1.0.0"
    assert world.cli("package", "publish", slug, _private_package(tmp_path / "pkg")).returncode == 0
    result = world.cli("deploy", "--steward", world.steward_url, "--simulate-tee", "sgx", "--simulator-pki",
                       world.simulator, slug)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert [line for line in err.splitlines() if not line.startswith("warning: ")] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("Error: ") and err.splitlines()[-1].endswith("the keep does not satisfy the repository's keep policy: an SGX keep's "
                                         "evidence cannot name a package (SGX has no launch-time host data): a "
                                         "private tag is served to SEV-SNP and TDX keeps only (403)"), err
    assert MARKER not in result.stdout + result.stderr
