"""The keep's pull from the key broker (runtime/unlock.py), in process: verify the fetched manifest against
the pinned publisher, attest with the package's digest, get the key, decrypt, install — and every refusal."""

from __future__ import annotations

import pytest
from _provision import MARKER, Broker, Publisher, keep_policy, package_dir, simulator

from conftest import example
from enarx.protocol import LaunchRequest
from enarx.runtime import stages
from enarx.runtime.launch import Launch, StageFailure
from enarx.runtime.unlock import is_encrypted, unlock

CONFIG = ('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
          '[[files]]\nkind = "secrets"\n[[secrets]]\nname = "token"\nenv = "TOKEN"\n')


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlock")
    sim = root / "simulator"
    simulator(sim)
    broker = Broker(sim)
    yield root, sim, broker
    broker.stop()


def fetched(pkg) -> dict[str, bytes]:
    """What a keep fetches from a registry for an encrypted package: the manifest and the ciphertext."""
    files = {"manifest.jws": (pkg.directory / "manifest.jws").read_bytes()}
    for ref in pkg.manifest.all_blobs():
        files[ref.path] = (pkg.directory / ref.path).read_bytes()
    return files


def launch_for(sim, tee: str) -> Launch:
    launch = Launch(LaunchRequest(module_name="main.wasm", simulate_tee={"snp": "sev-snp", "tdx": "tdx"}[tee],
                                  simulator_dir=str(sim)), b"")
    stages.plan(launch)
    return launch


@pytest.mark.parametrize("tee", ["snp", "tdx"])
def test_a_keep_unlocks_the_package_it_fetched(world, tee):
    root, sim, broker = world
    alice = Publisher(root, f"alice-{tee}")
    source = package_dir(root / f"src-{tee}", example("c", "hello"), config=CONFIG, files={"secrets/token": MARKER})
    pkg = alice.seal(source, root / f"pkg-{tee}", keep_policy(tee), resource=f"alice/hello-{tee}/1.0.0")
    broker.register(pkg, "alice")
    files = fetched(pkg)
    assert is_encrypted(files) and not is_encrypted({"main.wasm": b""})
    launch = launch_for(sim, tee)
    unlock(launch, files, kbs_url=broker.url, publisher_pem=alice.pub_path.read_text(), origin="alice/hello")
    assert MARKER in bytes(launch.module_bytes) and launch.request.cache_dir is None
    stages.provide_secrets(launch)
    assert ("TOKEN", MARKER.decode()) in launch.need_plan().env
    launch.close()


def test_refusals_end_the_keep_with_the_reason(world):
    root, sim, broker = world
    alice, mallory = Publisher(root, "alice-r"), Publisher(root, "mallory-r")
    source = package_dir(root / "src-r", example("c", "hello"))
    pkg = alice.seal(source, root / "pkg-r", keep_policy("snp", measurement="ab" * 48), resource="alice/strict/1")
    broker.register(pkg, "alice")
    files = fetched(pkg)
    alice_pem, mallory_pem = alice.pub_path.read_text(), mallory.pub_path.read_text()
    cases = [
        (broker.url, mallory_pem, "not signed by the pinned publisher"),
        (broker.url, None, "pin its publisher with --publisher-key"),
        (None, alice_pem, "with --kbs URL"),
        ("http://kbs.example.com", alice_pem, "use https"),
        (broker.url, alice_pem, "policy.measurement.allow"),
    ]
    for kbs_url, publisher_pem, fragment in cases:
        with pytest.raises(StageFailure) as exc:
            unlock(launch_for(sim, "snp"), files, kbs_url=kbs_url, publisher_pem=publisher_pem, origin="alice/strict")
        assert fragment in str(exc.value) and str(exc.value).startswith("alice/strict"), str(exc.value)


OLD_TCB = {"snp": ("[min_svn]\nsnp = 24\n", {"tcb": {"bootloader": 4, "tee": 0, "snp": 10, "microcode": 219}}),
           "tdx": ("[min_svn]\ntdx_module_svn = 3\n", {"tee_tcb_svn": bytes([1, 0, 0]) + bytes(13)})}


@pytest.mark.parametrize("tee", ["snp", "tdx"])
@pytest.mark.parametrize("case", ["debug", "old-tcb"])
def test_a_debug_or_outdated_keep_is_refused_the_key_with_the_policys_reasons(world, monkeypatch, tee, case):
    """The keep's whole pull, with evidence the simulator makes for a debug TEE or an old TCB."""
    import hashlib

    from enarx.attestation.model import Tee
    from enarx.attestation.simulate.intel import simulate_tdx
    from enarx.attestation.simulate.persistent import SimulatorPki
    from enarx.attestation.simulate.snp import simulate_snp
    from enarx.kbs.evidence import build_tee_evidence
    from enarx.runtime.attest import kbs

    root, sim, broker = world
    alice = Publisher(root, f"alice-{tee}-{case}")
    source = package_dir(root / f"src-{tee}-{case}", example("c", "hello"))
    extra = OLD_TCB[tee][0] if case == "old-tcb" else ""
    pkg = alice.seal(source, root / f"pkg-{tee}-{case}", keep_policy(tee, extra=extra),
                     resource=f"alice/{tee}-{case}/1")
    broker.register(pkg, "alice")
    fields = {"debug": True} if case == "debug" else OLD_TCB[tee][1]
    empty = hashlib.sha384(b"").digest()

    def evidence_for(report_data: bytes) -> dict:
        if tee == "snp":
            s = simulate_snp(report_data=report_data, measurement=empty, pki=SimulatorPki(sim).snp(), **fields)
            from enarx.attestation.collateral import from_ders

            return build_tee_evidence(Tee.SNP, s.report, from_ders([s.endorsement_cert]))  # the broker holds the CRL
        s = simulate_tdx(report_data=report_data, mrtd=empty, pki=SimulatorPki(sim).intel(), **fields)
        return build_tee_evidence(Tee.TDX, s.quote, s.collateral)

    monkeypatch.setattr(kbs, "tee_evidence_for", lambda source: (tee, evidence_for))
    with pytest.raises(StageFailure) as exc:
        unlock(launch_for(sim, tee), fetched(pkg), kbs_url=broker.url, publisher_pem=alice.pub_path.read_text(),
               origin="the package")
    rule = {"debug": "policy.debug", "old-tcb": "policy.min_svn.snp" if tee == "snp" else "policy.min_svn.tdx_module_svn"}
    text = str(exc.value)
    assert "403" in text and rule[case] in text and "expected" in text, text
