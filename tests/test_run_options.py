"""`enarx run` has one option parser: the click-free fast path (`enarx run …`) and the click command
(`enarx --log-target stderr run …`, or any global option first) behave the same for every option, its
environment variable and every error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ENARX, enarx, example

# (name, arguments after `run` with {tmp}/{cfg}/{steward_cfg} filled in, extra environment,
#  expected status, a fragment expected in stdout + stderr)
CASES = [
    ("env", ["--env", "A=1", "--env=B=x=y", "{c/args_env}", "one"], {}, 0, "env:B=x=y"),
    ("dir", ["--dir", "{tmp}::/d", "{c/files}", "/d"], {}, 0, "written by wasm"),
    ("dir=", ["--dir={tmp}", "{c/files}", "{tmp}"], {}, 0, "entry: hello.txt"),
    ("memory-limit", ["--memory-limit", "64MiB", "{c/memhog}"], {}, 2, "malloc failed after"),
    ("memory-limit too low", ["--memory-limit=1MiB", "{c/hello}"], {}, 1, "memory limit"),
    ("timeout", ["--timeout", "0.5", "{c/spin}"], {}, 124, "exceeded its time limit of 0.5 s"),
    ("no-cache", ["--no-cache", "{c/hello}"], {}, 0, "Hello, world!"),
    ("backend", ["--backend", "nil", "{c/hello}"], {}, 0, "Hello, world!"),
    ("backend from env", ["{c/hello}"], {"ENARX_BACKEND": "nil"}, 0, "Hello, world!"),
    ("option beats env", ["--backend", "nil", "{c/hello}"], {"ENARX_BACKEND": "quantum"}, 0, "Hello"),
    ("wasmcfgfile", ["--wasmcfgfile", "{cfg}", "{c/args_env}"], {}, 0, "env:FROM=config"),
    ("wasmcfgfile from env", ["{c/args_env}"], {"ENARX_WASMCFGFILE": "{cfg}"}, 0, "env:FROM=config"),
    ("simulate-tee, nothing attested", ["--simulate-tee", "sgx", "{c/hello}"], {}, 0,
     "SIMULATED sgx evidence is not used: nothing is attested"),
    ("simulator-pki", ["--simulate-tee", "sev-snp", "--simulator-pki", "{tmp}/pki", "--wasmcfgfile",
                       "{steward_cfg}", "{c/hello}"], {}, 1, "with SIMULATED sev-snp evidence (test PKI in"),
    ("end of options", ["--", "{c/args_env}", "--", "--env"], {}, 0, "argv[2]=--env"),
    ("help", ["--help"], {}, 0, "--simulator-pki DIR"),
    ("-h", ["-h", "--bogus"], {}, 0, "Usage: enarx run"),
    # errors about things rather than the command line: exit 1
    ("missing dir", ["--dir", "{tmp}/nope", "{c/hello}"], {}, 1, "nope: no such directory to preopen"),
    ("missing module file", ["{tmp}/nope.wasm"], {}, 1, "nope.wasm: no such file"),
    ("missing CA bundle", ["--ca-bundle", "{tmp}/nope.pem", "{c/hello}"], {}, 1, "nope.pem' does not exist"),
]
USAGE_ERRORS = [  # exit 2, one line naming where to look, before anything runs
    ("simulate-tee bogus", ["--simulate-tee", "bogus", "{c/hello}"], {}, 2, "'bogus' is not one of"),
    ("unknown option", ["--timout", "3", "{c/hello}"], {}, 2, "No such option: --timout. Did you mean --timeout?"),
    ("missing value", ["--timeout"], {}, 2, "Option '--timeout' requires an argument."),
    ("flag with value", ["--no-cache=yes", "{c/hello}"], {}, 2, "'--no-cache' does not take a value"),
    ("missing module", ["--no-cache"], {}, 2, "Missing argument 'MODULE'."),
    ("bad timeout", ["--timeout", "-3", "{c/hello}"], {}, 2, "--timeout: must be a positive number"),
    ("bad size", ["--memory-limit", "lots", "{c/hello}"], {}, 2, "--memory-limit: expected a size"),
    ("bad env", ["--env", "NOEQUALS", "{c/hello}"], {}, 2, "--env 'NOEQUALS': expected KEY=VALUE"),
    ("bad dir", ["--dir", "{tmp}::", "{c/hello}"], {}, 2, "expected HOST[::GUEST]"),
    ("unknown backend", ["--backend", "quantum", "{c/hello}"], {}, 2, 'Keep backend identifier "quantum"'),
    ("unknown backend from env", ["{c/hello}"], {"ENARX_BACKEND": "quantum"}, 2,
     "--backend (from $ENARX_BACKEND)"),
    ("empty path", ["--wasmcfgfile=", "{c/hello}"], {}, 2, "--wasmcfgfile: expected a path"),
    ("empty CA bundle path", ["--ca-bundle=", "{c/hello}"], {}, 2, "--ca-bundle: expected a path"),
    ("publisher-key without await-push", ["--publisher-key", "{cfg}", "{c/hello}"], {}, 2,
     "--publisher-key goes with --await-push"),
    ("await-push bad address", ["--await-push", "nowhere"], {}, 2, "expected ADDR:PORT"),
    ("await-push with wasmcfgfile", ["--await-push", "127.0.0.1:0", "--wasmcfgfile", "{cfg}"], {}, 2,
     "a pushed package brings its own Enarx.toml"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("runopts")
    cfg = tmp / "Enarx.toml"
    cfg.write_text('[env]\nFROM = "config"\n[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n'
                   '[[files]]\nkind = "stderr"\n')
    steward_cfg = tmp / "steward.toml"
    steward_cfg.write_text('steward = "http://127.0.0.1:9/"\n[[files]]\nkind = "null"\n[[files]]\nkind = "stdout"\n')
    return {"tmp": str(tmp), "cfg": str(cfg), "steward_cfg": str(steward_cfg)}


def _fill(text: str, files: dict[str, str]) -> str:
    if text.startswith("{c/"):
        return str(example("c", text[3:-1]))
    return text.format(**files)


@pytest.mark.parametrize("name,args,env,status,fragment", CASES + USAGE_ERRORS,
                         ids=[c[0] for c in CASES + USAGE_ERRORS])
def test_both_paths_behave_alike(name, args, env, status, fragment, files):
    args = [_fill(a, files) for a in args]
    env = {k: _fill(v, files) for k, v in env.items()}
    fast = enarx("run", *args, env=env)
    slow = enarx("--log-target", "stderr", "run", *args, env=env)
    for proc in (fast, slow):
        output = (proc.stdout + proc.stderr).decode()
        assert proc.returncode == status, (name, output)
        assert fragment in output, (name, output)
        if name in {case[0] for case in USAGE_ERRORS}:
            assert output.splitlines() == [output.strip()] and output.endswith("(see `enarx run --help`)\n")
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)


def test_every_option_is_covered_and_in_the_help():
    from enarx.cli.runargs import OPTIONS

    used = {arg.partition("=")[0] for case in CASES + USAGE_ERRORS for arg in case[1]}
    help_text = enarx("run", "--help").stdout.decode()
    for option in OPTIONS:
        assert option.name in used, f"{option.name} has no case in CASES"
        assert option.name in help_text
        if option.envvar:
            assert any(option.envvar in case[2] for case in CASES + USAGE_ERRORS), option.envvar
            assert option.envvar in help_text


def test_the_fast_path_does_not_load_click():
    """What keeps `enarx run` start-up fast: a plain command line is parsed without importing click."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "enarx", "run", str(example("c", "hello"))],
                          capture_output=True, timeout=60)
    assert proc.stdout == b"Hello, world!\n"
    imported = {line.rpartition("|")[2].strip() for line in proc.stderr.decode().splitlines()}
    assert "enarx.cli.runargs" in imported and "click" not in imported
    slow = subprocess.run([sys.executable, "-X", "importtime", "-m", "enarx", "run", "--help"],
                          capture_output=True, timeout=60)
    assert "click" in {line.rpartition("|")[2].strip() for line in slow.stderr.decode().splitlines()}


def test_parse_gives_keep_options():
    from enarx.api import KeepOptions
    from enarx.cli.runargs import parse

    line = parse(["--env", "A=1", "--env=B=2", "--dir", "/d", "--dir", "/e::/x", "--timeout=3", "--no-cache",
                  "--memory-limit", "1KiB", "app.wasm", "--env", "x"])
    assert line is not None and line.module == "app.wasm" and line.args == ["--env", "x"]
    options = KeepOptions(**line.options)
    assert options.env == {"A": "1", "B": "2"} and options.dirs == [("/d", "/d", True), ("/e", "/x", True)]
    assert (options.timeout, options.cache, options.memory_limit) == (3.0, False, 1024)
    assert parse(["--help"]) is None and parse(["-h", "x.wasm"]) is None
    assert ENARX  # the CLI under test is the real one (conftest)
