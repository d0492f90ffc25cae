"""Secrets declared in Enarx.toml: parsing, the secrets stage (files in a private read-only directory and
environment variables), and what an encrypted package's staging leaves out."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from conftest import example
from enarx.config import Secret, SecretsFile, parse_config
from enarx.errors import ConfigError
from enarx.protocol import Channel, LaunchRequest
from enarx.runtime import stages
from enarx.runtime.launch import Launch, StageFailure
from enarx.runtime.provision import install
from enarx.runtime.stages.secrets import provide_secrets

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
SECRETS = STDIO + """
[[files]]
kind = "secrets"

[[secrets]]
name = "api-token"
env = "API_TOKEN"

[[secrets]]
name = "tls.key"
path = "keys/server.key"
"""


def test_secrets_parse_with_their_defaults():
    config = parse_config(SECRETS)
    assert config.secrets == (Secret("api-token", "secrets/api-token", "API_TOKEN"),
                              Secret("tls.key", "keys/server.key", None))
    assert config.files[3] == SecretsFile("/run/secrets")
    assert config.to_dict()["secrets"][1] == {"name": "tls.key", "path": "keys/server.key"}
    named = parse_config('[[files]]\nkind = "secrets"\nname = "/etc/app-secrets"\n')
    assert named.files[0].name == "/etc/app-secrets"


@pytest.mark.parametrize("toml,fragment", [
    ('[[secrets]]\nname = "../x"\n', "is not a file name"),
    ('[[secrets]]\nname = "a b"\n', "is not a file name"),
    ('[[secrets]]\nname = "x"\npath = "/etc/shadow"\n', "relative path inside the package"),
    ('[[secrets]]\nname = "x"\npath = "a/../../b"\n', "relative path inside the package"),
    ('[[secrets]]\nname = "x"\nenv = "1BAD"\n', "not an environment variable name"),
    ('[env]\nTOKEN = "a"\n[[secrets]]\nname = "x"\nenv = "TOKEN"\n', "set twice"),
    ('[[secrets]]\nname = "x"\nenv = "T"\n[[secrets]]\nname = "y"\nenv = "T"\n', "set twice"),
    ('[[secrets]]\nname = "x"\n[[secrets]]\nname = "x"\n', "declared twice"),
    ('[[secrets]]\nname = "x"\nvalue = "inline"\n', "unknown field `value`"),
    ('[[secrets]]\npath = "x"\n', "missing field `name`"),
    ('secrets = "x"\n', "expected an array of tables"),
    ('[[files]]\nkind = "secrets"\n[[files]]\nkind = "secrets"\n', "at most one entry"),
    ('[[files]]\nkind = "secrets"\npath = "x"\n', "unknown field `path`"),
])
def test_bad_secret_declarations_are_one_clear_error(toml, fragment):
    with pytest.raises(ConfigError) as exc:
        parse_config(toml, source="pkg/Enarx.toml")
    assert fragment in str(exc.value) and str(exc.value).startswith("pkg/Enarx.toml: ")


def test_the_secrets_directory_must_come_before_sockets():
    toml = STDIO + '[[files]]\nkind = "listen"\nname = "web"\nprot = "tcp"\nport = 0\n[[files]]\nkind = "secrets"\n'
    launch = launch_of(config_toml=toml)
    with pytest.raises(StageFailure, match="`secrets` entries must come before"):
        stages.plan(launch)


def launch_of(*, module: bytes = b"", **request) -> Launch:
    request.setdefault("module_name", "main.wasm")
    keep_end, host_end = socket.socketpair()
    threading.Thread(target=lambda: [None for _ in iter(lambda: host_end.recv(1 << 16), b"")], daemon=True).start()
    return Launch(LaunchRequest(**request), module, Channel(keep_end, max_incoming=1 << 20))


def plaintext_package(root):
    (root / "secrets").mkdir(parents=True)
    (root / "keys").mkdir()
    (root / "Enarx.toml").write_text(SECRETS)
    (root / "secrets" / "api-token").write_text("tok-123")
    (root / "keys" / "server.key").write_bytes(b"\x00\x01binary key")
    return root


def test_the_stage_makes_a_private_directory_and_sets_the_environment(tmp_path):
    pkg = plaintext_package(tmp_path / "pkg")
    launch = launch_of(config_toml=SECRETS, config_source=str(pkg / "Enarx.toml"), env=[("API_TOKEN", "host!")])
    stages.plan(launch)
    provide_secrets(launch)
    plan = launch.need_plan()
    directory = plan.preopens[0].host
    assert plan.preopens[0].guest == "/run/secrets" and not plan.preopens[0].writable
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert sorted(os.listdir(directory)) == ["api-token", "tls.key"]
    assert stat.S_IMODE(os.stat(os.path.join(directory, "tls.key")).st_mode) == 0o400
    assert Path(directory, "tls.key").read_bytes() == b"\x00\x01binary key"
    # the secret replaces the host's --env of the same name (getenv takes the first match: there is one)
    assert [v for k, v in plan.env if k == "API_TOKEN"] == ["tok-123"]
    launch.close()
    assert not os.path.exists(directory)


def test_an_env_secret_must_be_text_and_a_secret_must_exist(tmp_path):
    pkg = plaintext_package(tmp_path / "pkg")
    (pkg / "secrets" / "api-token").write_bytes(b"\xff\xfe")
    launch = launch_of(config_toml=SECRETS, config_source=str(pkg / "Enarx.toml"))
    stages.plan(launch)
    with pytest.raises(StageFailure, match="cannot be the environment variable API_TOKEN"):
        provide_secrets(launch)
    (pkg / "keys" / "server.key").unlink()
    (pkg / "keys" / "server.key").symlink_to("/etc/hostname")  # a secret is never read through a link
    (pkg / "secrets" / "api-token").write_text("ok")
    launch = launch_of(config_toml=SECRETS, config_source=str(pkg / "Enarx.toml"))
    stages.plan(launch)
    with pytest.raises(StageFailure, match="secret 'tls.key': cannot read keys/server.key"):
        provide_secrets(launch)


def test_an_encrypted_packages_secrets_come_from_memory_and_are_not_staged_with_its_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    files = {"main.wasm": bytearray(example("c", "hello").read_bytes()), "Enarx.toml": bytearray(SECRETS.encode()),
             "secrets/api-token": bytearray(b"from-memory"), "keys/server.key": bytearray(b"k"),
             "data/table.csv": bytearray(b"a,b\n")}
    launch = launch_of(await_push=True)
    stages.plan(launch)
    install(launch, files, "the test package")
    provide_secrets(launch)
    staged = {os.path.relpath(os.path.join(d, f), launch.staging_dir) for d, _, fs in os.walk(launch.staging_dir)
              for f in fs}
    assert staged == {"package/data/table.csv", "secrets/api-token", "secrets/tls.key"}
    assert launch.request.cache_dir is None and launch.request.config_toml == SECRETS
    assert ("API_TOKEN", "from-memory") in launch.need_plan().env
    launch.close()
    assert os.listdir(tmp_path) == []


def test_a_plaintext_package_with_secrets_runs(tmp_path):
    """`enarx run DIR` of a plaintext package (development): the workload sees the env secret and the
    directory (fd 3 is a directory)."""
    from conftest import enarx

    pkg = plaintext_package(tmp_path / "pkg")
    (pkg / "main.wasm").write_bytes(example("c", "args_env").read_bytes())
    proc = enarx("run", "--env", "API_TOKEN=from-the-host", pkg)
    assert proc.returncode == 0, proc.stderr
    assert b"env:API_TOKEN=tok-123\n" in proc.stdout and b"from-the-host" not in proc.stdout
    (pkg / "main.wasm").write_bytes(example("c", "fdinfo").read_bytes())
    proc = enarx("run", pkg)
    assert proc.returncode == 0, proc.stderr
    assert b"fd 3: filetype 3\n" in proc.stdout  # WASI's directory filetype
