"""The simulated attestation walk-through with the CLI alone: simulator PKI → a Steward trusting it and
holding its collateral → keeps attesting with `--simulate-tee` (finding 6: a simulated TDX keep, which sends
only its quote, is certified by a Steward given --collateral) — and the simulator refused on hardware."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import enarx, example
from enarx.errors import KeepError
from enarx.runtime.attest.simulated import refuse_on_hardware, simulated_source

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


def _steward(*args: str):
    sys.path.insert(0, str(Path(__file__).parent / "steward"))
    from _helpers import steward_process

    return steward_process("--generate-ca", "steward.local", *args)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory) -> tuple[Path, list[str], Path]:
    """`enarx attest simulate pki DIR`: the anchor files and the collateral directory it prints."""
    directory = tmp_path_factory.mktemp("simulator")
    proc = enarx("attest", "simulate", "pki", directory)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    anchors = [line.split(": ", 1)[1] for line in lines if line.startswith("anchor: ")]
    collateral = Path(next(line for line in lines if line.startswith("collateral: ")).split()[1])
    assert {Path(a).name for a in anchors} == {"chain.pem", "root.pem"} and collateral.is_dir()
    assert "--collateral" in proc.stderr.decode()  # the Steward command to run next
    return directory, anchors, collateral


def run_keep(tmp_path: Path, port: int, simulator: Path, tee: str) -> subprocess.CompletedProcess[bytes]:
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(f'steward = "http://127.0.0.1:{port}/"\n' + STDIO)
    return enarx("run", "--wasmcfgfile", cfg, "--simulate-tee", tee, "--simulator-pki", simulator,
                 example("c", "hello"))


@pytest.mark.parametrize("tee", ["tdx", "sgx", "sev-snp"])
def test_keeps_are_certified_by_a_steward_holding_the_simulators_collateral(tmp_path, simulator, tee):
    directory, anchors, collateral = simulator
    trust = [a for anchor in anchors for a in ("--insecure-trust-anchor", anchor)]
    proc, port = _steward(*trust, "--collateral", str(collateral))
    try:
        result = run_keep(tmp_path, port, directory, tee)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.startswith(b"Hello"), result.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    decisions = [json.loads(line) for line in proc.log_lines if '"steward.decision"' in line]
    assert [(d["outcome"], d["tee"]) for d in decisions] == [("issued", tee)], decisions


def test_without_the_collateral_a_tdx_keep_is_refused_naming_what_is_missing(tmp_path, simulator):
    directory, anchors, _ = simulator
    trust = [a for anchor in anchors for a in ("--insecure-trust-anchor", anchor)]
    proc, port = _steward(*trust)
    try:
        result = run_keep(tmp_path, port, directory, "tdx")
    finally:
        proc.terminate()
        proc.wait(10)
    err = result.stderr.decode()
    assert result.returncode != 0 and "steward refused the keep (HTTP 403)" in err
    for item in ("TCB info", "QE identity", "CRL"):
        assert f"missing collateral: {item}" in err, err


def test_the_simulator_is_refused_in_a_confidential_guest(tmp_path):
    device = tmp_path / "tdx_guest"
    device.write_bytes(b"")
    with pytest.raises(KeepError, match="confidential guest"):
        refuse_on_hardware((str(tmp_path / "absent"), str(device)))
    with pytest.raises(KeepError, match="--simulate-tee refused"):
        simulated_source("tdx", tmp_path, b"\0asm", interfaces=(str(device),))
    refuse_on_hardware((str(tmp_path / "absent"),))  # no guest interface: allowed
    assert simulated_source("sgx", tmp_path, b"\0asm", interfaces=()).simulated is True


@pytest.mark.parametrize(("tee", "width"), [("sev-snp", 32), ("tdx", 48)])
def test_simulated_launch_data_of_the_wrong_width_is_refused_not_padded(tmp_path, tee, width):
    """The deploy gap of a TDX keep came from a 32-byte digest padded into a 48-byte MRCONFIGID: the registry
    compares all 48 bytes with a SHA-384, so such a keep could never be served. A wrong width is an error."""
    other = 48 if width == 32 else 32
    with pytest.raises(KeepError, match=f"launch data is {width} bytes, not {other}"):
        simulated_source(tee, tmp_path, b"\0asm", host_data=bytes(range(other)), interfaces=())
    assert simulated_source(tee, tmp_path, b"\0asm", host_data=bytes(range(width)), interfaces=()).host_data == \
        bytes(range(width))
