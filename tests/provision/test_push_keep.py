"""`enarx run --await-push` end to end: an empty keep on this host, its owner pushing an encrypted package
with `enarx push` through a recording network relay, simulated SEV-SNP and TDX evidence, example workloads in
two languages and the CPython package. The workload's marker never crosses the network, never passes
through the host process (strace), and the keep's staging directory is gone afterwards."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from _provision import (
    MARKER,
    Publisher,
    RecordingRelay,
    WaitingKeep,
    captured_bytes,
    keep_policy,
    package_dir,
    push_cli,
    simulator,
)

from conftest import EXAMPLES, assert_one_line_error, enarx, example

pytestmark = pytest.mark.examples


@pytest.fixture
def sim(tmp_path):
    directory = tmp_path / "simulator"
    return directory, simulator(directory)


def push_through_relay(keep: WaitingKeep, pkg, publisher: Publisher, anchors: list[str], tmp_path):
    """The owner pushes through a recording relay; (relay, the push's result, the keep's (status, out, err))."""
    relay = RecordingRelay(keep.port)
    try:
        pushed = push_cli(relay.port, pkg, publisher, anchors, tmp_path)
        assert pushed.returncode == 0, pushed.stderr
        return relay, pushed, keep.wait()
    finally:
        keep.kill()


@pytest.mark.parametrize("tee,lang,traced", [("snp", "c", True), ("tdx", "rust", False)])
def test_a_pushed_example_runs_and_its_plaintext_never_crosses_the_host(tmp_path, sim, tee, lang, traced):
    sim_dir, anchors = sim
    publisher = Publisher(tmp_path)
    config = ('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
              '[[files]]\nkind = "dir"\npath = "data"\n[[files]]\nkind = "secrets"\n'
              '[[secrets]]\nname = "token"\nenv = "TOKEN"\n')
    source = package_dir(tmp_path / "src", example(lang, "hello"), config=config,
                         files={"data/notes.txt": MARKER * 3, "secrets/token": MARKER})
    pkg = publisher.seal(source, tmp_path / "pkg", keep_policy(tee))
    keep_tmp = tmp_path / "keep-tmp"  # where the nil keep stages the package's data files
    keep_tmp.mkdir()
    trace = tmp_path / "host.strace" if traced else None
    keep = WaitingKeep(tmp_path, tee, sim_dir, publisher=publisher.pub_path, strace=trace,
                       env={"TMPDIR": str(keep_tmp)})
    relay, pushed, (status, stdout, stderr) = push_through_relay(keep, pkg, publisher, anchors, tmp_path)
    assert f"to an attested {tee} keep (pinned to your publisher key)".encode() in pushed.stdout
    assert status == 0, stderr
    assert stdout == b"Hello, world!\n"
    relay.thread.join(30)
    ciphertext = sum(ref.size for ref in pkg.manifest.all_blobs())
    assert len(relay.seen) > ciphertext  # the relay carried the whole package …
    assert MARKER not in relay.seen and MARKER[:12] not in relay.seen  # … and never a plaintext byte of it
    assert list(keep_tmp.iterdir()) == []  # the keep's private staging directory is gone
    if trace is not None:
        host = captured_bytes(trace)
        blob = (pkg.directory / pkg.manifest.blobs[0].path).read_bytes()
        pieces = [blob[i:i + 64] for i in range(0, len(blob) - 64, 4096)]
        # the capture saw the ciphertext cross the host (network and keep channel; frames cut it in places)
        assert sum(piece in host for piece in pieces) > len(pieces) // 2
        assert MARKER not in host and MARKER[:12] not in host


def test_the_cpython_package_runs_pushed_with_its_data_and_secrets(tmp_path, sim):
    """The interpreter, its standard library and an application reading a data file and a secret (as a file
    and as an environment variable), all pushed encrypted; the package's directories are read-only."""
    sim_dir, anchors = sim
    source = tmp_path / "python"
    shutil.copytree(EXAMPLES / "python", source)
    (source / "main.wasm").unlink()
    data = MARKER * 10
    app = ("import hashlib, os, sys\n"
           "def writable(path):\n"
           "    try:\n"
           "        open(path, 'wb').close()\n"
           "        return True\n"
           "    except OSError:\n"
           "        return False\n"
           "data = open('/app/data/secret.txt', 'rb').read()\n"
           "token = open('/run/secrets/api-token', 'rb').read()\n"
           "print('provisioned', sys.version_info[:2], hashlib.sha256(data).hexdigest(),\n"
           "      hashlib.sha256(token).hexdigest(), os.environ['API_TOKEN'].encode() == token,\n"
           "      writable('/run/secrets/x'), writable('/app/data/x'))\n")
    config = (EXAMPLES / "python" / "Enarx.toml").read_text().replace(
        'args = ["-B", "/app/app.py", "--from-config"]', 'args = ["-B", "/app/provisioned.py"]')
    config += '[[files]]\nkind = "secrets"\n\n[[secrets]]\nname = "api-token"\nenv = "API_TOKEN"\n'
    (source / "secrets").mkdir()
    (source / "secrets" / "api-token").write_bytes(MARKER + b"-token")
    shutil.rmtree(source / "app")
    package_dir(tmp_path / "staged", EXAMPLES / "python" / "main.wasm")
    (source / "main.wasm").write_bytes((tmp_path / "staged" / "main.wasm").read_bytes())
    (source / "Enarx.toml").write_text(config)
    (source / "app" / "data").mkdir(parents=True)
    (source / "app" / "provisioned.py").write_text(app)
    (source / "app" / "data" / "secret.txt").write_bytes(data)
    package_bytes = sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
    publisher = Publisher(tmp_path)
    pkg = publisher.seal(source, tmp_path / "pkg", keep_policy("tdx"))
    keep = WaitingKeep(tmp_path, "tdx", sim_dir, publisher=publisher.pub_path)
    relay, _pushed, (status, stdout, stderr) = push_through_relay(keep, pkg, publisher, anchors, tmp_path)
    assert status == 0, stderr
    token = hashlib.sha256(MARKER + b"-token").hexdigest()
    assert stdout.decode() == f"provisioned (3, 11) {hashlib.sha256(data).hexdigest()} {token} True False False\n"
    relay.thread.join(30)
    assert len(relay.seen) > package_bytes and MARKER not in relay.seen  # the whole package, encrypted


def test_a_keep_waits_through_refused_pushes_and_runs_its_owners(tmp_path, sim):
    """A keep pinned to Alice: Mallory's package is refused by the keep, a push with a policy the keep fails
    is refused by the owner, a tampered package fails in the keep — each one line — and then Alice's runs."""
    sim_dir, anchors = sim
    alice, mallory = Publisher(tmp_path, "alice"), Publisher(tmp_path, "mallory")
    source = package_dir(tmp_path / "src", example("c", "hello"))
    good = alice.seal(source, tmp_path / "good", keep_policy("snp"))
    foreign = mallory.seal(source, tmp_path / "foreign", keep_policy("snp"))
    tampered = alice.seal(source, tmp_path / "tampered", keep_policy("snp"))
    blob = tampered.directory / tampered.manifest.blobs[0].path
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    keep = WaitingKeep(tmp_path, "snp", sim_dir, publisher=alice.pub_path)
    try:
        refused = push_cli(keep.port, foreign, mallory, anchors, tmp_path)
        assert_one_line_error(refused, "launched for another publisher")
        strict = push_cli(keep.port, good, alice, anchors, tmp_path,
                          policy='[measurements.measurement]\nallow = ["' + "ab" * 48 + '"]\n')
        assert_one_line_error(strict, "policy.measurement.allow")
        broken = push_cli(keep.port, tampered, alice, anchors, tmp_path)
        assert_one_line_error(broken)
        assert b"the keep refused the push" in broken.stderr or b"differs" in broken.stderr
        assert push_cli(keep.port, good, alice, anchors, tmp_path).returncode == 0
        status, stdout, stderr = keep.wait()
    finally:
        keep.kill()
    assert status == 0 and stdout == b"Hello, world!\n", stderr


def test_await_push_usage_errors(tmp_path):
    proc = enarx("run", "--await-push", "127.0.0.1:0", "--wasmcfgfile", EXAMPLES / "python" / "Enarx.toml")
    assert_one_line_error(proc, "a pushed package brings its own Enarx.toml")
    proc = enarx("run", "--await-push", "nowhere", "--simulate-tee", "sev-snp")
    assert_one_line_error(proc, "expected ADDR:PORT")
    proc = enarx("run", "--publisher-key", EXAMPLES / "python" / "Enarx.toml", example("c", "hello"))
    assert proc.returncode == 2 and b"--publisher-key goes with --await-push" in proc.stderr
    proc = enarx("run")
    assert proc.returncode == 2 and b"--await-push" in proc.stderr
    (tmp_path / "not-a-key.pem").write_text("nope")
    proc = enarx("run", "--await-push", "127.0.0.1:0", "--publisher-key", tmp_path / "not-a-key.pem")
    assert_one_line_error(proc, "is not a PEM public key")


def test_a_keep_without_a_tee_says_it_cannot_receive(tmp_path):
    """A nil keep has no evidence: it refuses at once instead of waiting for pushes it could never take."""
    import subprocess

    from conftest import ENARX

    proc = subprocess.Popen([*ENARX, "run", "--await-push", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"needs an SEV-SNP or TDX keep" in err


def test_an_sgx_keep_pinned_to_a_publisher_says_its_evidence_cannot_show_the_pin(tmp_path, sim):
    """SGX has no launch-time host data: the pin is enforced by the keep but absent from its evidence, so its
    owner's `enarx push` reports it unpinned. The host is told so up front rather than finding out later."""
    import subprocess

    from conftest import ENARX

    publisher = Publisher(tmp_path)
    proc = subprocess.Popen([*ENARX, "run", "--await-push", "127.0.0.1:0", "--simulate-tee", "sgx",
                             "--simulator-pki", str(sim[0]), "--publisher-key", str(publisher.pub_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    lines = []
    try:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.append(raw.decode())
            if "waiting for a push" in lines[-1]:
                break
    finally:
        proc.kill()
        proc.wait(10)
    assert any(line.startswith("warning: an SGX keep's evidence cannot show the publisher pin") for line in lines), lines
