"""Pull through the registry end to end: `enarx package publish --encrypt` stores only ciphertext in a real
Drawbridge and registers the key with a key broker; `enarx deploy --kbs --publisher-key` runs it in a keep
(simulated SEV-SNP and TDX) that attests to the broker, fetches, decrypts inside and runs — for C, Rust and the
CPython package. The marker in the module, its data and its secret is nowhere the host side can look: the
registry's storage, the broker's storage and log, and every byte the `enarx deploy` process reads or writes
(strace, the host↔keep channel included)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "drawbridge"))  # the registry's test fixtures

from _fixtures import Drawbridge, cli, issuer, pki  # the registry's fixtures, used by name
from _provision import (
    EMPTY_KEEP,
    MARKER,
    TEES,
    Broker,
    Publisher,
    captured_bytes,
    keep_policy,
    package_dir,
    simulator,
    strace_command,
)

from conftest import ENARX, EXAMPLES, example

pytestmark = pytest.mark.examples

CONFIG = ('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
          '[[files]]\nkind = "dir"\npath = "data"\n[[files]]\nkind = "secrets"\n'
          '[[secrets]]\nname = "token"\nenv = "TOKEN"\n')


class World:
    """A registry (TLS, private CA), a key broker accepting the registry's OIDC issuer, the simulator's PKIs;
    user alice (token subject "alice", so that her broker namespace is her registry name) with repo `app`."""

    def __init__(self, work: Path, pki, issuer):
        self.work, self.pki = work, pki
        self.simulator = work / "simulator"
        simulator(self.simulator)
        (work / "registry").mkdir()
        self.registry = Drawbridge(pki, issuer, store=work / "registry")
        self.host = self.registry.host
        self.broker_store = work / "broker"
        self.broker = Broker(self.simulator, self.broker_store, issuer=(issuer.url, issuer.audience))
        self.token = issuer.mint("alice")
        self.publisher = Publisher(work, "alice")
        for args in (("user", "register", f"{self.host}/alice"), ("repo", "register", f"{self.host}/alice/app")):
            assert self.cli(*args).returncode == 0

    def cli(self, *args, **kw) -> subprocess.CompletedProcess[bytes]:
        return cli(*args, token=self.token, ca=self.pki.ca_pem, **kw)

    def publish(self, tag: str, source: Path, policy: str, *extra) -> subprocess.CompletedProcess[bytes]:
        (self.work / f"policy-{tag}.toml").write_text(policy)
        return self.cli("package", "publish", "--encrypt", "--policy", self.work / f"policy-{tag}.toml", "--kbs",
                        self.broker.url, "--sign-key", self.publisher.key_path, *extra, f"{self.host}/alice/app:{tag}",
                        source, timeout=600)

    def deploy(self, tag: str, tee: str, *, strace: Path | None = None, tmpdir: Path | None = None,
               publisher: Path | None = None, debug: bool = False, cache: Path | None = None,
               encrypted: bool = True, backend: tuple[str, dict[str, str]] | None = None,
               ) -> subprocess.CompletedProcess[bytes]:
        """``enarx deploy`` of alice/app:TAG (``cache``: its module cache directory; ``backend``: a name and
        its environment, e.g. a kvm keep under TCG)."""
        pulled = ["--kbs", self.broker.url, "--publisher-key", publisher or self.publisher.pub_path] if encrypted else []
        on = ["--backend", backend[0]] if backend else []
        args = [*(["--log-filter", "debug"] if debug else []), "deploy", *on, *pulled, "--simulate-tee",
                TEES[tee], "--simulator-pki", self.simulator, f"{self.host}/alice/app:{tag}"]
        env = {"TMPDIR": str(tmpdir)} if tmpdir else {}
        if backend:
            env.update(backend[1])
        if cache is not None:
            env["ENARX_CACHE_DIR"] = str(cache)
        if strace is None:
            return self.cli(*args, env=env, timeout=300)
        import os

        full = {**os.environ, "ENARX_CA_BUNDLE": str(self.pki.ca_pem), **env}
        return subprocess.run([*strace_command(strace), *ENARX, *map(str, args)], capture_output=True, env=full,
                              timeout=300, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        self.registry.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki, issuer):
    world = World(tmp_path_factory.mktemp("pull"), pki, issuer)
    yield world
    world.stop()


def assert_refused(proc: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    """One `Error:` line naming the reasons (after deploy's warning that the evidence is simulated)."""
    lines = [line for line in proc.stderr.decode().splitlines() if line.strip() and not line.startswith("warning:")]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr.decode()
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def everything_under(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.parametrize("tee,lang,traced", [("snp", "c", True), ("tdx", "rust", False)])
def test_publish_encrypted_and_deploy_pulls_decrypts_and_runs(world, tmp_path, tee, lang, traced):
    tag = f"1.0.{['c', 'rust'].index(lang)}"
    source = package_dir(tmp_path / "src", example(lang, "hello"), config=CONFIG,
                         files={"data/notes.txt": MARKER * 3, "secrets/token": MARKER})
    published = world.publish(tag, source, keep_policy(tee))
    assert published.returncode == 0, published.stderr
    assert b"encrypted (ciphertext only)" in published.stderr and b"Its key is registered" in published.stderr
    keep_tmp = tmp_path / "keep-tmp"
    keep_tmp.mkdir()
    trace = tmp_path / "deploy.strace" if traced else None
    cache = tmp_path / "cache"
    deployed = world.deploy(tag, tee, strace=trace, tmpdir=keep_tmp, debug=not traced, cache=cache)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout == b"Hello, world!\n"
    assert not list(cache.glob("modules-*/*"))  # the host's module cache never holds the workload's code
    if not traced:  # … which a deploy in the clear does use here, so the check above can fail
        assert world.cli("package", "publish", f"{world.host}/alice/app:{tag}-plain", example(lang, "hello")
                         ).returncode == 0
        assert world.deploy(f"{tag}-plain", tee, cache=cache, encrypted=False).returncode == 0
        assert len(list(cache.glob("modules-*/*"))) == 1
    if not traced:  # the key was obtained while the ciphertext downloaded (the keep's debug log says so)
        assert b"key released early" in deployed.stderr, deployed.stderr
    assert list(keep_tmp.iterdir()) == []  # the keep's staging (data, secrets) is gone
    # what the host side can look at
    assert MARKER not in everything_under(world.work / "registry")
    assert MARKER not in everything_under(world.broker_store) and MARKER.decode() not in world.broker.log.getvalue()
    assert "released" in world.broker.log.getvalue()
    assert '"isolation": "process, no isolation"' in world.broker.log.getvalue()  # the nil keep said so
    assert MARKER not in deployed.stdout + deployed.stderr + published.stdout + published.stderr
    if trace is not None:
        host = captured_bytes(trace)
        assert len(host) > 20_000  # TLS to the registry and the broker, the LAUNCH and stdout frames, …
        assert MARKER not in host and MARKER[:12] not in host


def test_an_encrypted_package_deploys_into_a_kvm_keep(world, tmp_path, vm_env):
    """A VM keep reaches the registry and the key broker (and nothing else of the host), decrypts inside the
    guest, and its workload gets its secret."""
    source = package_dir(tmp_path / "src", example("c", "args_env"), config=CONFIG,
                         files={"data/notes.txt": b"notes", "secrets/token": MARKER})
    assert world.publish("7.0.0", source, keep_policy("snp")).returncode == 0
    deployed = world.deploy("7.0.0", "snp", backend=("kvm", vm_env))
    assert deployed.returncode == 0, deployed.stderr
    assert b"env:TOKEN=" + MARKER + b"\n" in deployed.stdout
    assert MARKER not in deployed.stderr
    assert '"isolation": "emulated, no isolation"' in world.broker.log.getvalue()


def test_the_cpython_package_deploys_encrypted(world, tmp_path):
    source = tmp_path / "python"
    shutil.copytree(EXAMPLES / "python", source, ignore=shutil.ignore_patterns("main.wasm", "app"))
    package_dir(tmp_path / "staged", EXAMPLES / "python" / "main.wasm")
    shutil.copy(tmp_path / "staged" / "main.wasm", source / "main.wasm")
    (source / "app").mkdir()
    (source / "app" / "pulled.py").write_text(
        "import hashlib, os, sys\n"
        "token = open('/run/secrets/token', 'rb').read()\n"
        "print('pulled', sys.version_info[:2], hashlib.sha256(token).hexdigest(),\n"
        "      os.environ['TOKEN'].encode() == token)\n")
    (source / "secrets").mkdir()
    (source / "secrets" / "token").write_bytes(MARKER)
    config = (EXAMPLES / "python" / "Enarx.toml").read_text().replace(
        'args = ["-B", "/app/app.py", "--from-config"]', 'args = ["-B", "/app/pulled.py"]')
    (source / "Enarx.toml").write_text(config + '[[files]]\nkind = "secrets"\n'
                                                '[[secrets]]\nname = "token"\nenv = "TOKEN"\n')
    published = world.publish("3.11.0", source, keep_policy("snp"))
    assert published.returncode == 0, published.stderr
    deployed = world.deploy("3.11.0", "snp")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.decode() == f"pulled (3, 11) {hashlib.sha256(MARKER).hexdigest()} True\n"
    assert MARKER not in everything_under(world.work / "registry")


def test_a_keep_the_package_policy_refuses_gets_no_key(world, tmp_path):
    source = package_dir(tmp_path / "src", example("c", "hello"))
    policy = keep_policy("snp", measurement="ab" * 48)
    assert world.publish("2.0.0", source, policy).returncode == 0
    refused = world.deploy("2.0.0", "snp")
    line = assert_refused(refused, "package policy", "policy.measurement.allow", EMPTY_KEEP)
    assert "403" in line
    assert "refused" in world.broker.log.getvalue()


def test_deploy_pins_the_publisher(world, tmp_path):
    """A deployer who pins another publisher gets nothing run; a plaintext package with a pinned publisher is
    refused too (the host cannot downgrade to an unsigned package)."""
    source = package_dir(tmp_path / "src", example("c", "hello"))
    assert world.publish("4.0.0", source, keep_policy("snp")).returncode == 0
    other = Publisher(tmp_path, "someone-else")
    assert_refused(world.deploy("4.0.0", "snp", publisher=other.pub_path), "not signed by the pinned publisher")
    assert world.cli("package", "publish", f"{world.host}/alice/app:4.0.1", example("c", "hello")).returncode == 0
    assert_refused(world.deploy("4.0.1", "snp"), "is not encrypted, but its publisher was pinned")


def test_an_interrupted_encrypted_publish_resumes_with_the_same_package(world, tmp_path):
    """The upload fails (no such repository); the key is registered already. Run again once the repository
    exists: the same encrypted package is uploaded and the broker accepts the identical registration."""
    source = package_dir(tmp_path / "src", example("c", "hello"))
    policy = tmp_path / "p.toml"
    policy.write_text(keep_policy("snp"))
    args = ["package", "publish", "--encrypt", "--policy", policy, "--kbs", world.broker.url, "--sign-key",
            world.publisher.key_path, f"{world.host}/alice/later:1.0.0", source]
    first = world.cli(*args)
    assert first.returncode != 0
    registered = world.broker.broker.config.store.get("alice/later/1.0.0")
    assert registered is not None
    assert world.cli("repo", "register", f"{world.host}/alice/later").returncode == 0
    second = world.cli(*args)
    assert second.returncode == 0, second.stderr
    assert registered.manifest_digest.encode() in second.stderr
    from enarx.packaging.publish import working_directory

    class Slug:
        host, user, repo, tag = world.host, "alice", "later", "1.0.0"

    assert not working_directory(Slug).exists()  # removed after the upload


def test_publish_encrypt_usage(world, tmp_path):
    source = package_dir(tmp_path / "src", example("c", "hello"))
    proc = world.cli("package", "publish", "--encrypt", f"{world.host}/alice/app:9.0.0", source)
    assert proc.returncode == 2 and b"--encrypt needs --policy, --kbs, --sign-key" in proc.stderr
    proc = world.cli("package", "publish", "--kbs", world.broker.url, f"{world.host}/alice/app:9.0.0", source)
    assert proc.returncode == 2 and b"go with --encrypt" in proc.stderr


def _register(world, pkg) -> None:
    """Register ``pkg``'s key at the broker as alice would (her registry token is an OIDC token the broker
    accepts)."""
    import base64

    import httpx

    body = {"manifest": pkg.token, "key": base64.urlsafe_b64encode(pkg.content_key).decode().rstrip("=")}
    r = httpx.post(f"{world.broker.url}/kbs/v0/resource/{pkg.manifest.resource}", json=body,
                   headers={"Authorization": f"Bearer {world.token}"})
    assert r.status_code == 201, r.text


def _tampered_copy(pkg, out: Path, case: str, other) -> Path:
    """A copy of sealed ``pkg`` as a hostile registry (or host) would serve it."""
    import base64
    import json

    from enarx.packaging import stream

    shutil.copytree(pkg.directory, out)
    data_ref = max(pkg.manifest.blobs, key=lambda ref: ref.size)  # the data file: several 4 KiB chunks
    blob = out / data_ref.path
    raw = bytearray(blob.read_bytes())
    sealed_chunk = 4096 + stream.TAG_SIZE
    if case == "flipped-bit":
        raw[stream.HEADER_SIZE + sealed_chunk + 10] ^= 0x01
    elif case == "swapped-chunks":
        first = slice(stream.HEADER_SIZE, stream.HEADER_SIZE + sealed_chunk)
        second = slice(first.stop, first.stop + sealed_chunk)
        raw[first], raw[second] = raw[second], raw[first]
    elif case == "truncated":
        del raw[-sealed_chunk:]
    elif case == "modified-manifest":  # the host relaxes the keep policy
        header, payload, signature = pkg.token.split(".")
        doc = json.loads(base64.urlsafe_b64decode(payload + "=="))
        doc["policy"] = doc["policy"].replace('tees = ["sev-snp"]', 'tees = ["sev-snp", "tdx"]\nallow_debug = true')
        forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
        (out / "manifest.jws").write_text(f"{header}.{forged}.{signature}")
    elif case == "another-packages-file":  # the same publisher's other package: its data file in this one's place
        other_ref = max(other.manifest.blobs, key=lambda ref: ref.size)
        raw = bytearray((other.directory / other_ref.path).read_bytes())
    blob.write_bytes(bytes(raw))
    return out


HOSTILE = {
    "flipped-bit": "failed authentication",
    "swapped-chunks": "failed authentication",
    "truncated": "truncated",
    "modified-manifest": "not signed by the pinned publisher",
    "another-packages-file": "failed authentication",
}


def test_a_hostile_registry_cannot_change_the_package_the_keep_runs(world, tmp_path):
    """Alice's sealed package, its key registered, served by the registry with one change each — a flipped
    ciphertext bit, two chunks swapped, the last chunk cut off, a relaxed policy in the manifest, a data file
    of another of her packages. The registry's tree is self-consistent (it was published so), so every
    change reaches the keep; each ends the deploy with one `Error:` line before the workload runs."""
    from enarx.packaging import keys, seal

    signer = keys.load_signing_key(world.publisher.key_path)
    source = package_dir(tmp_path / "src", example("c", "hello"), config=CONFIG,
                         files={"data/notes.txt": MARKER * 600, "secrets/token": MARKER})
    pkg = seal.seal_package(source, tmp_path / "pkg", sign_key=signer, policy=keep_policy("snp"),
                            resource="alice/app/6.0.0", chunk_log2=12)
    other = seal.seal_package(source, tmp_path / "other", sign_key=signer, policy=keep_policy("snp"),
                              resource="alice/app/6.1.0", chunk_log2=12)
    _register(world, pkg)
    _register(world, other)
    for number, (case, fragment) in enumerate(HOSTILE.items(), start=1):
        served = _tampered_copy(pkg, tmp_path / case, case, other)
        tag = f"6.0.{number}"
        assert world.cli("package", "publish", f"{world.host}/alice/app:{tag}", served).returncode == 0
        deployed = world.deploy(tag, "snp")
        line = assert_refused(deployed, fragment)
        assert deployed.stdout == b"", case  # the workload never ran
        assert MARKER.decode() not in line
    # the untouched package, served the same way, runs
    assert world.cli("package", "publish", f"{world.host}/alice/app:6.0.0", pkg.directory).returncode == 0
    deployed = world.deploy("6.0.0", "snp")
    assert deployed.returncode == 0 and deployed.stdout == b"Hello, world!\n", deployed.stderr
