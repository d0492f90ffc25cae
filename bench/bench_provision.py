"""Encrypted packages: what decryption costs inside the keep.

* Decryption throughput: opening a 20 MB encrypted package in memory (key check, index, every chunk
  authenticated and decrypted, sizes checked) vs ``cryptography``'s AES-256-GCM alone decrypting the same
  chunks into one fresh buffer (the plaintext has to be held somewhere either way) — target ≥ 0.8.
* Delivering a 20 MB package into the keep, encrypted vs plain: reading the package files from disk and
  checking their SHA-256 against the manifest (what any deploy does), plus, for the encrypted package,
  decrypting it — a time ratio, shown without a target: it is the encryption's share only.
* ``enarx deploy`` of a 20 MB package from a Drawbridge registry, encrypted vs the same package in the
  clear — the whole command: the CLI, the keep's start, the fetch over TLS with every digest checked, and for
  the encrypted package the keep's attestation to the key broker (simulated SEV-SNP), the key release and
  the decryption inside the keep — target ≤ 1.2× the time. Both run without the module cache (an encrypted
  package never uses it), so the ratio is what encryption costs, not what the cache saves.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from framework import quick, row

from enarx.packaging import keys, seal, stream, unseal

ROOT = Path(__file__).resolve().parent.parent

SIZE = 20 * 1000 * 1000


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def collect(rounds: int) -> list[dict]:
    size = SIZE // 10 if quick() else SIZE
    repeat = 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src"
        (src / "data").mkdir(parents=True)
        (src / "main.wasm").write_bytes(b"\0asm\x01\0\0\0")
        (src / "data" / "blob.bin").write_bytes(os.urandom(size))
        keys.generate_signing_key(root / "sign.key")
        pkg = seal.seal_package(src, root / "pkg", sign_key=keys.load_signing_key(root / "sign.key"),
                                policy='tees = ["sev-snp"]\n')
        doc = pkg.manifest
        ciphertexts = {ref.path: (root / "pkg" / ref.path).read_bytes() for ref in doc.all_blobs()}
        memory = unseal.MemorySource(ciphertexts)

        # the same chunks, nonces and aad, decrypted by AESGCM alone
        big = max(doc.blobs, key=lambda r: r.size)
        data = ciphertexts[big.path]
        header = stream.BlobHeader.parse(data)
        cipher = stream._cipher(pkg.content_key, header, doc.package_id_bytes, bytes.fromhex(big.id))
        aad = data[:stream.HEADER_SIZE] + doc.package_id_bytes + bytes.fromhex(big.id)
        sealed = header.chunk_size + stream.TAG_SIZE
        body = data[stream.HEADER_SIZE:]
        chunks = [body[i:i + sealed] for i in range(0, len(body), sealed)]
        big_plain = len(body) - len(chunks) * stream.TAG_SIZE

        def aead_alone() -> None:  # the same chunks into one fresh buffer, as the keep must hold them
            out = memoryview(bytearray(big_plain))
            last, pos = len(chunks) - 1, 0
            for i, chunk in enumerate(chunks):
                n = len(chunk) - stream.TAG_SIZE
                cipher.decrypt_into(i.to_bytes(11, "big") + (b"\x01" if i == last else b"\x00"), chunk, aad,
                                    out[pos:pos + n])
                pos += n

        def open_in_keep() -> None:
            unseal.open_package(memory, doc, pkg.content_key, verify_digests=False)

        plain_files = [p for p in src.rglob("*") if p.is_file()]
        plain_digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in plain_files}
        directory = unseal.DirectorySource(root / "pkg")

        def deliver_plain() -> None:
            for p in plain_files:
                if hashlib.sha256(p.read_bytes()).hexdigest() != plain_digests[p]:
                    raise AssertionError("digest")

        def deliver_encrypted() -> None:
            unseal.open_package(directory, doc, pkg.content_key, verify_digests=True)

        throughput, delivery = [], []
        mb = size / 1e6
        for _ in range(rounds):
            base = _best(aead_alone, repeat)
            subject = _best(open_in_keep, repeat)
            throughput.append((mb / base, mb / subject))
            delivery.append((_best(deliver_plain, repeat), _best(deliver_encrypted, repeat)))
    return [
        *_deploy_rows(rounds, size),
        row("provisioning", f"decrypting a {size // 1_000_000} MB encrypted package in the keep", unit="MB/s",
            baseline_label="cryptography AES-256-GCM alone", samples=throughput, target=0.8,
            note="STREAM chunks of 256 KiB; key check, index and size checks included"),
        row("provisioning", f"delivering a {size // 1_000_000} MB package into the keep: encrypted vs plain",
            unit="s", baseline_label="plain package, SHA-256 checked", samples=delivery, target=None, compare="<=",
            note="both read from disk and check every file's SHA-256; the encrypted one is also decrypted"),
    ]


def _deploy_rows(rounds: int, size: int) -> list[dict]:
    """``enarx deploy`` of the same package from a registry, encrypted and in the clear, side by side."""
    import shutil
    import subprocess
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests" / "drawbridge"))  # the tests' loopback OIDC issuer and private CA
    from _pki import PrivateCa
    from bench_drawbridge import _drawbridge
    from oidc_issuer import LoopbackIssuer

    from enarx.cabundle import client_context
    from enarx.drawbridge.client import RegistryClient
    from enarx.drawbridge.names import Slug
    from enarx.drawbridge.tree import build_tree
    from enarx.packaging.publish import prepare

    work = Path(tempfile.mkdtemp(prefix="enarx-bench-deploy-"))
    issuer = LoopbackIssuer()
    registry = broker = None
    try:
        private_ca = PrivateCa("Bench deploy CA")
        ca = private_ca.write(work / "ca.pem")
        crt, key = private_ca.leaf(work, "registry")  # names 127.0.0.1: `enarx deploy 127.0.0.1:PORT/…`
        (work / "store").mkdir()
        registry, host = _drawbridge(crt, key, issuer, store=str(work / "store"))
        host = host.replace("localhost:", "127.0.0.1:")
        broker, kbs_url = _broker(work / "simulator", issuer)
        token = issuer.mint("bench")
        context = client_context(str(ca))
        source = work / "pkg"
        (source / "data").mkdir(parents=True)
        shutil.copy(ROOT / "examples" / "build" / "c" / "hello.wasm", source / "main.wasm")
        (source / "Enarx.toml").write_text('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\n'
                                           'kind = "stderr"\n[[files]]\nkind = "dir"\npath = "data"\n')
        (source / "data" / "blob.bin").write_bytes(os.urandom(size))
        keys.generate_signing_key(work / "publisher.key")
        policy = ('allow_test_anchors = true\ntees = ["sev-snp"]\n[measurements.measurement]\n'
                  f'allow = ["{hashlib.sha384(b"").hexdigest()}"]\n')
        with RegistryClient(host, context, token) as client:
            client.register_user(Slug(host, "bench"), "bench")
            client.register_repo(Slug(host, "bench", "pkg"), {"public": True})
            client.publish(Slug(host, "bench", "pkg", "1.0.0"), build_tree(source), progress=False)
            os.environ["ENARX_CACHE_DIR"] = str(work / "cache")  # the working directory of the encrypted publish
            prepared = prepare(Slug(host, "bench", "pkg", "2.0.0"), source, policy, kbs_url, work / "publisher.key",
                               token, ca_bundle=str(ca))
            client.publish(Slug(host, "bench", "pkg", "2.0.0"), build_tree(prepared.package), progress=False)
        common = [sys.executable, "-m", "enarx", "deploy", "--no-cache", "--simulate-tee", "sev-snp",
                  "--simulator-pki", str(work / "simulator")]
        env = {**os.environ, "ENARX_CA_BUNDLE": str(ca)}

        def deploy(*args: str) -> float:
            start = time.perf_counter()
            done = subprocess.run([*common, *args], capture_output=True, env=env, timeout=300)
            elapsed = time.perf_counter() - start
            if done.returncode != 0 or done.stdout != b"Hello, world!\n":
                raise RuntimeError(f"deploy failed: {done.stderr.decode()[-500:]}")
            return elapsed

        plain = [f"{host}/bench/pkg:1.0.0"]
        encrypted = ["--kbs", kbs_url, "--publisher-key", str(work / "publisher.key.pub"), f"{host}/bench/pkg:2.0.0"]
        deploy(*plain)
        deploy(*encrypted)  # warm both paths (the simulator's PKI, the page cache)
        samples = [(min(deploy(*plain) for _ in range(2)), min(deploy(*encrypted) for _ in range(2)))
                   for _ in range(rounds)]
    finally:
        if broker is not None:
            broker.stop()
        if registry is not None:
            registry.terminate()
            registry.wait(10)
        issuer.stop()
        shutil.rmtree(work, ignore_errors=True)
    mb = size // 1_000_000
    return [row("provisioning", f"enarx deploy of a {mb} MB package: encrypted vs in the clear", unit="s",
                baseline_label="the same package unencrypted", samples=samples, target=1.2, compare="<=",
                note="the whole command through a Drawbridge on loopback TLS; the encrypted keep also attests to "
                     "the key broker (simulated SEV-SNP), gets the key and decrypts; no module cache for either")]


def _broker(simulator: Path, issuer) -> tuple:
    """A key broker on loopback trusting the simulator's test PKI and the issuer's tokens."""
    from enarx.attestation import roots
    from enarx.attestation.collateral import from_ders, load_collateral
    from enarx.attestation.simulate.persistent import SimulatorPki
    from enarx.kbs import publisher
    from enarx.kbs.app import create_app
    from enarx.kbs.service import Broker, BrokerConfig
    from enarx.steward.server import BackgroundServer
    from enarx.steward.service import load_insecure_anchors

    pki = SimulatorPki(simulator)
    pki.snp()
    pki.write_collateral()
    anchors, intermediates = load_insecure_anchors(pki.anchor_files())
    config = BrokerConfig(anchors=roots.builtin_anchors(anchors),
                          collateral=from_ders(intermediates).merge(load_collateral([pki.collateral_dir])),
                          publishers=publisher.make(issuer.url, issuer.audience))
    server = BackgroundServer(create_app(Broker(config))).start()
    return server, f"http://127.0.0.1:{server.port}"
