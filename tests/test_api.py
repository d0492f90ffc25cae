"""The Python API as a newcomer uses it: a mapping for env, what stdout callbacks receive, text mode,
warnings, and the names `enarx` exports."""

from __future__ import annotations

import io

import pytest

import enarx
from conftest import example


def test_env_takes_a_mapping_and_pairs():
    for env in ({"GREETING": "hi there", "EMPTY": ""}, [("GREETING", "hi there"), ("EMPTY", "")]):
        chunks: list[bytes] = []
        result = enarx.run(example("c", "args_env"), enarx.KeepOptions(args=["one"], env=env),
                           stdout=chunks.append)
        assert result.ok, result
        assert b"".join(chunks).decode().splitlines() == [
            "argv[0]=args_env.wasm", "argv[1]=one", "env:GREETING=hi there", "env:EMPTY="]


@pytest.mark.parametrize("env,fragment", [
    (["A=1"], "expected a mapping of strings to strings"),
    ({"A": 1}, "expected a mapping of strings to strings"),
    ({"A=B": "1"}, "'A=B' is not a valid variable name"),
    ({"": "x"}, "'' is not a valid variable name"),
])
def test_bad_env_is_a_clear_error(env, fragment):
    with pytest.raises(enarx.ConfigError, match=fragment):
        enarx.run(example("c", "hello"), enarx.KeepOptions(env=env))


def test_simulate_tee_names_a_known_tee():
    from enarx.api import SIMULATED_TEES
    from enarx.cli.runargs import OPTIONS

    assert next(o for o in OPTIONS if o.name == "--simulate-tee").choices == SIMULATED_TEES
    with pytest.raises(enarx.ConfigError, match="simulate_tee: 'snpp' is not one of sev-snp, tdx, sgx"):
        enarx.run(example("c", "hello"), enarx.KeepOptions(simulate_tee="snpp"))


def test_args_must_be_a_list_not_a_string():
    with pytest.raises(enarx.ConfigError, match="args: expected a list of strings"):
        enarx.run(example("c", "hello"), enarx.KeepOptions(args="one"))


def test_callbacks_receive_bytes_and_text_mode_gives_str():
    received: list[object] = []
    enarx.run(example("c", "cat"), stdin=b"bytes in", stdout=received.append)
    assert received and all(isinstance(chunk, bytes) for chunk in received)
    assert b"".join(received) == b"bytes in"  # type: ignore[arg-type]

    text: list[str] = []
    data = "h\u00e9llo, \u4e16\u754c \U0001f600\n" * 20000  # multi-byte characters across chunk boundaries
    result = enarx.run(example("c", "cat"), stdin=data, stdout=text.append, text=True)
    assert result.ok
    assert all(isinstance(chunk, str) for chunk in text) and "".join(text) == data


def test_text_file_and_binary_file_sinks():
    text_sink, binary_sink = io.StringIO(), io.BytesIO()
    enarx.run(example("c", "cat"), stdin="to a text file", stdout=text_sink)
    enarx.run(example("c", "cat"), stdin=b"to a binary file", stdout=binary_sink)
    assert text_sink.getvalue() == "to a text file"
    assert binary_sink.getvalue() == b"to a binary file"


def test_dirs_take_pairs_or_triples(tmp_path):
    for dirs in ([(str(tmp_path), "/d")], [(tmp_path, "/d", True)]):
        out: list[str] = []
        result = enarx.run(example("c", "files"), enarx.KeepOptions(args=["/d"], dirs=dirs), stdout=out.append,
                           text=True)
        assert result.ok and "written by wasm" in "".join(out)
    with pytest.raises(enarx.ConfigError, match="dirs: expected"):
        enarx.run(example("c", "hello"), enarx.KeepOptions(dirs=[str(tmp_path)]))


def test_simulated_evidence_warns_what_it_does(tmp_path):
    warnings: list[str] = []
    result = enarx.run(example("c", "hello"), enarx.KeepOptions(simulate_tee="tdx"), stdout=None,
                       on_warning=warnings.append)
    assert result.ok
    assert warnings == [("SIMULATED tdx evidence is not used: nothing is attested, as there is no Enarx.toml "
                        "with a `steward`")]
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('steward = "http://127.0.0.1:9/"\n[[files]]\nkind = "null"\n')
    warnings.clear()
    enarx.run(example("c", "hello"), enarx.KeepOptions(config_path=cfg, simulate_tee="sgx",
                                                        simulator_dir=str(tmp_path / "pki")),
              stdout=None, stderr=None, on_warning=warnings.append)
    assert warnings == [(f"attesting to http://127.0.0.1:9/ with SIMULATED sgx evidence (test PKI in "
                        f"{tmp_path / 'pki'}): no hardware protects this keep")]


def test_exported_names():
    names = dir(enarx)
    assert {"run", "KeepOptions", "KeepResult", "EnarxError", "__version__"} <= set(names)
    assert "TYPE_CHECKING" not in names and "annotations" not in names  # only what a user may call
    for name in enarx.__all__:
        assert getattr(enarx, name) is not None
    assert issubclass(enarx.ConfigError, enarx.EnarxError) and issubclass(enarx.UsageError, enarx.EnarxError)
    with pytest.raises(AttributeError):
        enarx.no_such_name  # noqa: B018


def test_runs_in_a_process_that_already_runs_wasmtime():
    """An embedding program that ran wasmtime WASI itself (here: an in-memory keep reading stdin): a keep
    forked from it would inherit wasmtime's runtime without its threads and hang; it is spawned instead."""
    from enarx.host.supervisor import Stdio, Supervisor
    from enarx.protocol import LaunchRequest
    from enarx.runtime.inmemory import InMemoryKeep

    first: list[bytes] = []
    report = Supervisor(InMemoryKeep(), Stdio(stdin=b"in memory", stdout=first.append, stderr=None)).run(
        LaunchRequest(module_name="cat.wasm"), example("c", "cat").read_bytes(), relay_stdin=True)
    assert (report.status, b"".join(first)) == (0, b"in memory")
    chunks: list[bytes] = []
    result = enarx.run(example("c", "cat"), enarx.KeepOptions(timeout=30), stdin=b"then a keep",
                       stdout=chunks.append)
    assert (result.status, result.kind, b"".join(chunks)) == (0, "exit", b"then a keep")
