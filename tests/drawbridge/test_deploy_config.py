"""A deployed package runs under its own Enarx.toml, confined to its own tree: the host can neither replace that
file nor add directories (the keep's evidence names the package, config included), the package cannot open the
deploying machine's directories, and a private package's Enarx.toml is never quoted back to the host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import test_deploy as td
from _fixtures import issuer, pki

from conftest import ENARX, example
from enarx.errors import ConfigError
from enarx.protocol import LaunchRequest
from enarx.runtime.launch import Launch, StageFailure

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
DATA_TOML = f'args = ["/data"]\n{STDIO}[[files]]\nkind = "dir"\npath = "data"\nname = "/data"\nwritable = true\n'


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki, issuer):
    world = td.World(tmp_path_factory.mktemp("deploy-config"), pki, issuer)
    yield world
    world.stop()


def _data_package(directory: Path, toml: str = DATA_TOML) -> Path:
    """files.wasm (writes DIR/hello.txt, lists DIR) with a data directory holding the secret marker."""
    (directory / "data").mkdir(parents=True)
    shutil.copy(example("c", "files"), directory / "main.wasm")
    (directory / "data" / "secret.txt").write_bytes(td.MARKER)
    (directory / "Enarx.toml").write_text(toml)
    return directory


def _attested_deploy(world, slug: str, *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ENARX, "deploy", "--steward", world.steward_url, "--simulate-tee", "sev-snp",
                           "--simulator-pki", str(world.simulator), *options, slug],
                          env=td._env(world), capture_output=True, timeout=180)


def test_the_host_cannot_replace_or_extend_a_registry_packages_enarx_toml(world, tmp_path: Path) -> None:
    world.private_repo("cfg", td.KEEP_POLICY)
    slug = f"{world.host}/alice/cfg:1.0.0"
    assert world.cli("package", "publish", slug, _data_package(tmp_path / "pkg")).returncode == 0
    host_dir = tmp_path / "host-chosen"
    host_dir.mkdir()
    (host_dir / "planted-by-the-host.txt").write_text("host input\n")
    host_toml = tmp_path / "host.toml"
    host_toml.write_text(f'args = ["/data"]\n{STDIO}[[files]]\nkind = "dir"\npath = "{host_dir}"\nname = "/data"\n'
                         'writable = true\n')
    for options, refused in ((("--wasmcfgfile", str(host_toml)), b"--wasmcfgfile cannot be used"),
                             (("--dir", f"{host_dir}::/data"), b"--dir cannot be used")):
        result = _attested_deploy(world, slug, *options)
        assert result.returncode == 1 and result.stdout == b"", result.stderr
        lines = result.stderr.decode().strip().splitlines()
        assert lines[-1].startswith("Error: ") and refused in result.stderr and b"registry package" in result.stderr
        assert sorted(p.name for p in host_dir.iterdir()) == ["planted-by-the-host.txt"]  # never opened
    own = _attested_deploy(world, slug)  # the package's own Enarx.toml: its own data directory, in the keep
    assert own.returncode == 0, own.stderr
    assert own.stdout == b"written by wasm\nentry: hello.txt\nentry: secret.txt\n"


def test_the_python_api_refuses_a_host_enarx_toml_or_dir_for_a_bound_tag(tmp_path: Path) -> None:
    from enarx import api

    toml = tmp_path / "Enarx.toml"
    toml.write_text(STDIO)
    root = '{"digest":{},"length":1,"type":"application/vnd.drawbridge.directory.v1+json"}'
    url = "https://127.0.0.1:9/api/v0.1.0/alice/x/_tag/1.0.0"
    with pytest.raises(ConfigError, match="--wasmcfgfile cannot be used with a registry package"):
        api.deploy(url, root, api.KeepOptions(config_path=toml))
    with pytest.raises(ConfigError, match="--dir cannot be used with a registry package"):
        api.deploy(url, root, api.KeepOptions(dirs=[(str(tmp_path), "/data")]))


@pytest.mark.parametrize("field", ["config_toml", "dirs"])
def test_the_keep_itself_refuses_host_additions_to_a_bound_tag(field: str, tmp_path: Path) -> None:
    """A host that skips its own check (it is not trusted) meets the keep's, before anything is fetched."""
    from enarx.runtime.fetch import fetch

    addition = {"config_toml": STDIO} if field == "config_toml" else {"dirs": [(str(tmp_path), "/data", True)]}
    launch = Launch(LaunchRequest(module_name="main.wasm", package_url="https://127.0.0.1:9/api/v0.1.0/a/b/_tag/1.0.0",
                                  package_root="{}", **addition), b"")
    with pytest.raises(StageFailure, match="cannot be used with a registry package"):
        fetch(launch)


@pytest.mark.parametrize("path", ["{victim}", "../../../../../..{victim}"])
def test_a_deployed_package_cannot_preopen_the_deployers_files(world, tmp_path: Path, path: str) -> None:
    """A public package is anyone's: its Enarx.toml must not give it the deploying machine's directories."""
    victim = tmp_path / "victims-home"
    victim.mkdir()
    (victim / "id_ed25519").write_text("PRIVATE KEY\n")
    toml = (f'args = ["/loot"]\n{STDIO}[[files]]\nkind = "dir"\npath = "{path.format(victim=victim)}"\n'
            'name = "/loot"\nwritable = true\n')
    package = tmp_path / "evil"
    package.mkdir()
    shutil.copy(example("c", "files"), package / "main.wasm")
    (package / "Enarx.toml").write_text(toml)
    slug = f"{world.host}/alice/pub:66.{len(path)}.0"
    assert world.cli("package", "publish", slug, package).returncode == 0
    result = subprocess.run([*ENARX, "deploy", slug], env=td._env(world), capture_output=True, timeout=180)
    assert result.returncode == 1 and b"id_ed25519" not in result.stdout
    assert b"files[3].path" in result.stderr and b"leaves the package" in result.stderr, result.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["id_ed25519"]  # nothing written there either


def test_a_private_packages_enarx_toml_is_refused_without_quoting_it(world, tmp_path: Path) -> None:
    """The keep reports where the file is wrong (key, index), never what it says: the host reads that report."""
    world.private_repo("quiet", td.KEEP_POLICY)
    marker = td.MARKER.decode()
    toml = f'args = ["/data"]\n{STDIO}[[files]]\nkind = "dir"\npath = "{marker}"\nname = "/{marker}"\n'
    slug = f"{world.host}/alice/quiet:1.0.0"
    assert world.cli("package", "publish", slug, _data_package(tmp_path / "pkg", toml)).returncode == 0
    result = _attested_deploy(world, slug)
    assert result.returncode == 1, result.stderr
    assert b"its Enarx.toml cannot be used, at files[3] (details withheld" in result.stderr
    assert td.MARKER not in result.stderr + result.stdout and td.MARKER[:12] not in result.stderr
    public = f"{world.host}/alice/pub:67.0.0"  # the same file in a public package is quoted: nothing to withhold
    assert world.cli("package", "publish", public, _data_package(tmp_path / "pub", toml)).returncode == 0
    result = subprocess.run([*ENARX, "deploy", public], env=td._env(world), capture_output=True, timeout=180)
    assert result.returncode == 1 and td.MARKER in result.stderr


@pytest.mark.parametrize(("message", "where"), [
    ("/s/Enarx.toml: files[4].path: 'SECRET' leaves the package", "files[4].path"),
    ("/s/Enarx.toml: files[3] (SECRET): cannot open directory '/s/SECRET': it does not exist", "files[3]"),
    ("/s/Enarx.toml: env.SECRET: expected a string, got integer", "env"),
    ("/s/Enarx.toml: not valid TOML: Invalid value (at line 7, column 12)", "line 7, column 12"),
    ("/s/Enarx.toml: SECRET: anything", "the file"),
    ("preopen '/SECRET': cannot open directory", "the file"),
])
def test_a_withheld_refusal_is_made_of_keys_and_numbers_only(message: str, where: str) -> None:
    from enarx.config.withhold import withheld

    refusal = withheld(message, "/s/Enarx.toml", "the package at https://r/x")
    assert f"cannot be used, at {where} (details withheld" in refusal and "SECRET" not in refusal and "\n" not in refusal


def test_a_private_packages_socket_and_preopen_failures_are_withheld_too(tmp_path: Path) -> None:
    """Failures after planning (a connection, a directory that vanished) quote the config as well: withheld."""
    from enarx.runtime.stages.instantiate import configure_wasi
    from enarx.runtime.stages.plan import plan
    from enarx.runtime.stages.resources import open_sockets

    secret = "secret-host-name-7f3a9c1e"
    (tmp_path / secret).mkdir()
    toml = (f'{STDIO}[[files]]\nkind = "dir"\npath = "{secret}"\n[[files]]\nkind = "connect"\nprot = "tcp"\n'
            f'host = "{secret}.invalid"\nport = 9\nname = "db"\n')
    request = LaunchRequest(module_name="main.wasm", config_toml=toml, config_source=str(tmp_path / "Enarx.toml"),
                            package_dir=str(tmp_path))
    for stage in (open_sockets, configure_wasi):
        launch = Launch(request, example("c", "hello").read_bytes())
        launch.withhold_config = "the package at https://r/x"
        plan(launch)
        if stage is configure_wasi:
            (tmp_path / secret).rmdir()  # gone between the check and the preopen
        with pytest.raises(StageFailure) as info:
            stage(launch)
        message = str(info.value)
        assert "details withheld" in message and secret not in message, message
