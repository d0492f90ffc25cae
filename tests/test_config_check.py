"""`enarx config check` accepts exactly what `enarx run` accepts: both call one check, so a refused
configuration gives the same one-line error from both, and a config without [[files]] warns on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_one_line_error, enarx, example

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
LISTEN = '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\naddr = "127.0.0.1"\nport = 0\n'

REFUSED = {
    "fds out of order": ('[[files]]\nkind = "stdout"\n[[files]]\nkind = "stdin"\n', "files[0]", "fds 0-2"),
    "http steward off loopback": ('steward = "http://example.com"\n' + STDIO, "steward", "https"),
    "missing dir": (STDIO + '[[files]]\nkind = "dir"\npath = "nope"\n', "files[3]", "does not exist"),
    "dir after a socket": (STDIO + LISTEN + '[[files]]\nkind = "dir"\npath = "."\n', "files[4]", "must come before"),
    "socket at fd 0": (LISTEN, "files[0]", "cannot be fd 0"),
    "missing CA bundle": (STDIO + '[[files]]\nkind = "connect"\nhost = "localhost"\nprot = "tls"\nca = "no.pem"\n',
                          "files[3].ca", "does not exist"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_config_check_refuses_what_run_refuses(case, tmp_path):
    text, *fragments = REFUSED[case]
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text(text)
    check = assert_one_line_error(enarx("config", "check", cfg), *fragments)
    run = enarx("run", "--wasmcfgfile", cfg, example("c", "hello"))
    assert assert_one_line_error(run, *fragments) == check
    assert run.stdout == b""


def test_no_files_warns_on_check_and_run(tmp_path: Path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('args = ["x"]\n')
    check = enarx("config", "check", cfg)
    assert check.returncode == 0, check.stderr
    run = enarx("run", "--wasmcfgfile", cfg, example("c", "hello"))
    assert run.returncode == 0, run.stderr
    for proc in (check, run):
        assert "no [[files]]" in proc.stderr.decode() and "no stdin, stdout or stderr" in proc.stderr.decode()
    cfg.write_text(STDIO)
    assert b"warning" not in enarx("config", "check", cfg).stderr
    quiet = enarx("run", "--wasmcfgfile", cfg, example("c", "hello"))
    assert quiet.stderr == b"" and quiet.stdout == b"Hello, world!\n"
