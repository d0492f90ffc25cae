"""CLI surfaces other than `run`: version, config init/check, platform info (text and JSON)."""

from __future__ import annotations

import json

from conftest import assert_one_line_error, enarx, example


def test_version():
    proc = enarx("--version")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("enarx ")


def test_config_init_writes_valid_template_and_refuses_overwrite(tmp_path):
    proc = enarx("config", "init", cwd=tmp_path)
    assert proc.returncode == 0
    assert (tmp_path / "Enarx.toml").is_file()
    check = enarx("config", "check", "--json", cwd=tmp_path)
    doc = json.loads(check.stdout)
    assert [f["kind"] for f in doc["config"]["files"]] == ["stdin", "stdout", "stderr"]
    assert doc["injected_env"] == {"FD_COUNT": "3", "FD_NAMES": "stdin:stdout:stderr"}
    assert_one_line_error(enarx("config", "init", cwd=tmp_path), "does already exist")


def test_config_check_prints_effective_defaults(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('[[files]]\nkind = "null"\n' * 3 + '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tls"\n')
    proc = enarx("config", "check", cfg)
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert 'addr = "::"' in out and "port = 443" in out and "FD_NAMES=null:null:null:ingest" in out


def test_config_check_reports_errors(tmp_path):
    cfg = tmp_path / "Enarx.toml"
    cfg.write_text('[[files]]\nkind = "stdin"\nname = "a:b"\n')
    assert_one_line_error(enarx("config", "check", cfg), "files[0].name", "must not contain ':'")


def test_platform_info_json_shape():
    proc = enarx("platform", "info", "--json")
    doc = json.loads(proc.stdout)
    assert doc["version"] and doc["system_info"]
    names = [b["backend"] for b in doc["backends"]]
    assert set(names) == {"nil", "kvm", "sev", "sgx", "tdx"}
    kvm = next(b for b in doc["backends"] if b["backend"] == "kvm")
    driver = kvm["data"][0]
    assert set(driver) == {"name", "pass", "info", "mesg", "data"}
    assert all(isinstance(row["mesg"], str) for row in kvm["data"])  # absent → the string "null"
    assert driver["data"], "rows nest"


def test_platform_info_text_marks_nil_available():
    out = enarx("platform", "info").stdout.decode()
    assert out.startswith("Enarx version ")
    assert "✔ Backend: nil" in out
    assert "✗ Backend: sev" in out  # no SEV-SNP hardware on this machine
    assert "visible to the host" in out


def test_usage_errors_are_one_line():
    assert_one_line_error(enarx("frobnicate"), "No such command", "enarx --help")
    assert_one_line_error(enarx("run"), "Missing argument 'MODULE'", "enarx run --help")
    assert_one_line_error(enarx("run", "--bogus", "x.wasm"), "No such option: --bogus")


def test_log_target_validation():
    assert_one_line_error(enarx("--log-target", "syslog", "platform", "info"),
                          "Invalid value for '--log-target'", "'syslog' is not one of 'stdout', 'stderr'")
    proc = enarx("--log-target", "stdout", "--log-filter", "debug", "run", example("c", "hello"))
    assert proc.returncode == 0 and proc.stdout.endswith(b"Hello, world!\n")
    assert b"nil backend" in proc.stdout and b"nil backend" not in proc.stderr  # the log went where asked


def test_equals_form_options(tmp_path):
    proc = enarx("run", "--env=K=v=w", example("c", "args_env"))
    assert b"env:K=v=w" in proc.stdout


def _subcommand_paths() -> list[tuple[str, ...]]:
    """Every command path of the real click tree (groups and leaves), found by walking it."""
    import click

    from enarx.cli.main import cli

    ctx = click.Context(cli)
    out: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            out.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(cli, ())
    return out


def test_every_help_works():
    paths = _subcommand_paths()
    assert ("run",) in paths and ("steward", "serve") in paths
    for path in paths:
        proc = enarx(*path, "--help")
        assert proc.returncode == 0, (path, proc.stderr.decode())
        assert proc.stdout.decode().startswith("Usage: enarx"), path
        assert not proc.stderr, (path, proc.stderr.decode())


def test_deploy_help_names_only_its_own_options():
    """deploy shares run's option table but has no --await-push: its --publisher-key goes with --kbs."""
    text = " ".join(enarx("deploy", "--help").stdout.decode().split())
    assert "--await-push" not in text
    assert "--publisher-key PEM With --kbs:" in text


def test_bare_enarx_shows_help():
    """Through the installed console script, as a user types it (it imports less than `python -m`)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("enarx")
    for args in ([], ["--help"]):
        proc = subprocess.run([str(script), *args], capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        assert "Commands:" in proc.stdout.decode() and not proc.stderr
    proc = enarx()
    assert proc.returncode == 0
    assert "Commands:" in proc.stdout.decode() and "run" in proc.stdout.decode()
    assert not proc.stderr


def test_usage_errors_exit_2_everywhere():
    """Every command reports a usage error as one line with 2, except `attest verify`, where 2 means
    "rejected": there it is 1 (with I/O errors), so that a typo is never read as a verdict."""
    for path in _subcommand_paths():
        proc = enarx(*path, "--no-such-option")
        assert_one_line_error(proc, "--no-such-option", f"(see `{' '.join(('enarx', *path))} --help`)")
        assert proc.returncode == (1 if path == ("attest", "verify") else 2), (path, proc.stderr)
