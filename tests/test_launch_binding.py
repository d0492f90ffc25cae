"""A keep runs exactly the package its launch binds — whatever the host puts in the launch request.

The host writes the launch request, so it is an attacker's input: a request that names two packages (a module
*and* a registry tag, an awaited push *and* a tag) would let a keep carry one package in its evidence while it
runs another. Those requests are refused by every keep (nil, simulated, a confidential VM guest) before any
evidence is made."""

from __future__ import annotations

import pytest

from conftest import example
from enarx.drawbridge.content import CT_DIRECTORY, Entry
from enarx.host.supervisor import Stdio, Supervisor
from enarx.protocol import LaunchRequest
from enarx.runtime.inmemory import InMemoryKeep

TAG = "https://registry.test/api/v0.1.0/alice/secret/_tag/1.0.0"
ROOT = Entry.of(b'{"main.wasm":{}}', CT_DIRECTORY)  # the tag entry of a (private) package the host knows of


def run_keep(request: LaunchRequest, module: bytes):
    out: list[bytes] = []
    supervisor = Supervisor(InMemoryKeep(), Stdio(stdin=None, stdout=out.append, stderr=None))
    return supervisor.run(request, module, relay_stdin=False), b"".join(out)


@pytest.mark.parametrize("tee", ["sev-snp", "tdx"])
def test_a_keep_running_the_hosts_module_cannot_carry_a_registry_tag_in_its_evidence(tee):
    """Attack: the host runs its own module but names a private tag's entry, so that the simulated evidence —
    and the Steward certificate the workload then presents over TLS — would name the tag (the registry serves
    a private tag to such a certificate). The keep refuses before it makes any evidence."""
    from enarx.runtime.hostdata import host_data
    from enarx.runtime.launch import Launch
    from enarx.runtime.stages.attest import evidence_source

    hello = example("c", "hello").read_bytes()
    request = LaunchRequest(module_name="hello.wasm", package_root=ROOT.encode().decode(), simulate_tee=tee)
    report, out = run_keep(request, hello)
    assert (report.status, report.kind) == (1, "error") and out == b""
    assert report.error == ("keep launch failed: the launch request names a registry tag but no URL to fetch it "
                            "from: a keep runs only the package its launch binds")
    from enarx.errors import KeepError

    with pytest.raises(KeepError, match="names a registry tag but no URL"):
        host_data(request, tee)
    with pytest.raises(KeepError, match="names a registry tag but no URL"):
        evidence_source(Launch(request, hello))


@pytest.mark.parametrize(("extra", "names"), [
    ({"package_root": ROOT.encode().decode(), "package_url": TAG}, "the registry package at " + TAG),
    ({"package_url": "https://registry.test/app.wasm"}, "the registry package at https://registry.test/app.wasm"),
])
def test_an_empty_keep_awaiting_a_push_cannot_also_be_bound_to_a_registry_package(extra, names):
    """Attack: an unpinned keep awaiting a push whose evidence names a private tag would run whatever the host
    pushes, certified as that tag."""
    request = LaunchRequest(module_name="main.wasm", await_push=True, simulate_tee="sev-snp", **extra)
    report, _ = run_keep(request, b"")
    assert report.error == (f"keep launch failed: the launch request names both {names} and a pushed package: "
                            "a keep runs only the package its launch binds")


def test_a_keep_sent_a_module_and_a_registry_package_is_refused():
    """Attack: the module would be what a simulated keep's evidence measures, the fetched package what runs."""
    request = LaunchRequest(module_name="main.wasm", package_url=TAG, package_root=ROOT.encode().decode(),
                            simulate_tee="sev-snp")
    report, _ = run_keep(request, example("c", "hello").read_bytes())
    assert report.error == (f"keep launch failed: the launch request names both the module it carries and the "
                            f"registry package at {TAG}: a keep runs only the package its launch binds")


@pytest.mark.parametrize("tee", ["sev-snp", "tdx"])
def test_a_confidential_guest_refuses_a_push_request_bound_to_a_tag(tee, tmp_path, monkeypatch):
    """On hardware the host sets HOST_DATA / MRCONFIGID to the tag's digest and sends an await-push request
    naming that tag: the guest's launch-binding check must not accept it as bound."""
    from enarx.runtime.attest.evidence import TsmReport
    from enarx.runtime.guest import stages
    from enarx.runtime.launch import Launch, StageFailure
    from test_vm_confidential import tsm_tree

    monkeypatch.setattr(stages, "confidential_guest", lambda: True)
    request = LaunchRequest(module_name="main.wasm", await_push=True, package_root=ROOT.encode().decode())
    if tee == "sev-snp":
        from enarx.attestation.simulate.snp import simulate_snp

        report = TsmReport(tsm_tree(tmp_path, "sev_guest", simulate_snp(host_data=ROOT.digests["sha-256"]).report))
    else:
        from enarx.attestation.simulate.intel import simulate_tdx

        report = TsmReport(tsm_tree(tmp_path, "tdx_guest", simulate_tdx(mrconfigid=ROOT.digests["sha-384"]).quote))
    with pytest.raises(StageFailure, match="names a registry tag but no URL"):
        stages.bind_workload(Launch(request, b""), tsm=report)


def test_a_pushed_package_gets_no_directory_of_the_hosts(tmp_path):
    """Attack: the host adds `--dir` to an empty keep; the owner's sealed package would run with a host
    directory preopened — where its own `/app` is, shadowing its code. Refused by the host CLI and, since the
    host is not trusted to do that, by the keep when it installs the package."""
    from conftest import assert_one_line_error, enarx
    from enarx.runtime.launch import Launch, StageFailure
    from enarx.runtime.provision import install

    (tmp_path / "evil").mkdir()
    proc = enarx("run", "--await-push", "127.0.0.1:0", "--simulate-tee", "sev-snp", "--dir",
                 f"{tmp_path / 'evil'}::/app")
    assert_one_line_error(proc, "--dir cannot be used with --await-push")
    request = LaunchRequest(module_name="main.wasm", await_push=True, dirs=[(str(tmp_path / "evil"), "/app", False)])
    files = {"main.wasm": bytearray(example("c", "hello").read_bytes()), "app/code.py": bytearray(b"print(1)\n"),
             "Enarx.toml": bytearray(b'[[files]]\nkind = "dir"\npath = "app"\nname = "/app"\n')}
    launch = Launch(request, b"")
    with pytest.raises(StageFailure, match="the host may not add directories to a sealed package"):
        install(launch, files, "the pushed package p")
    assert launch.staging_dir is None
