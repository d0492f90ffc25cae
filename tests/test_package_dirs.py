"""A package's Enarx.toml cannot open host directories outside the package (a downloaded package is not
trusted with the user's files); a host directory outside it needs the user's own --dir or --wasmcfgfile."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import assert_one_line_error, enarx, example
from enarx.backends.registry import pick_backend
from enarx.config.confine import open_dir
from enarx.config.parse import load_config
from enarx.config.validate import check_config
from enarx.errors import ConfigError
from enarx.host.supervisor import Stdio, Supervisor
from enarx.protocol import LaunchRequest

STDIO = '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'


def make_package(tmp_path: Path, dir_path: str, *, args: str = '["data"]') -> Path:
    """A package running the `files` example (writes ARG/hello.txt) with one `dir` entry named data."""
    (tmp_path / "outside").mkdir(exist_ok=True)
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    shutil.copy(example("c", "files"), pkg / "main.wasm")
    (pkg / "Enarx.toml").write_text(f"args = {args}\n" + STDIO
                                    + f'[[files]]\nkind = "dir"\npath = "{dir_path}"\nname = "data"\nwritable = true\n')
    return pkg


def refused_both_ways(pkg: Path, *fragments: str) -> None:
    """`enarx run PKG` and `enarx config check PKG` refuse it with the same one-line error."""
    run = assert_one_line_error(enarx("run", pkg), *fragments)
    check = assert_one_line_error(enarx("config", "check", pkg), *fragments)
    assert run == check


@pytest.mark.parametrize("path", ["/etc", "{outside}", "../outside", "data/../../outside", "./../outside"])
def test_absolute_or_climbing_paths_are_refused(tmp_path, path):
    pkg = make_package(tmp_path, path.format(outside=tmp_path / "outside"))
    refused_both_ways(pkg, "files[3].path", "leaves the package", "--dir")
    assert not (tmp_path / "outside" / "hello.txt").exists()


def test_ca_bundles_of_a_package_stay_inside_it(tmp_path):
    pkg = make_package(tmp_path, "data")
    (pkg / "data").mkdir()
    (pkg / "Enarx.toml").write_text(STDIO + '[[files]]\nkind = "connect"\nhost = "localhost"\nprot = "tls"\n'
                                    'ca = "/etc/ssl/certs/ca-certificates.crt"\n')
    refused_both_ways(pkg, "files[3].ca", "leaves the package")


@pytest.mark.parametrize("link", ["data", "data/inner"])
def test_a_symlink_out_of_the_package_is_refused(tmp_path, link):
    pkg = make_package(tmp_path, link)
    (tmp_path / "outside" / "inner").mkdir()
    if link == "data":
        (pkg / "data").symlink_to(tmp_path / "outside")
    else:
        (pkg / "data").symlink_to("../outside")  # relative: the link, not the last component, escapes
    refused_both_ways(pkg, "files[3]", "symbolic link")
    assert not list((tmp_path / "outside").rglob("hello.txt"))


def test_a_symlink_swapped_in_after_the_check_is_refused_when_opened(tmp_path):
    pkg = make_package(tmp_path, "data")
    (pkg / "data").mkdir()
    config = load_config(pkg / "Enarx.toml", package=True)
    assert check_config(config, package_root=str(pkg)) == []  # a real directory: accepted
    (pkg / "data").rmdir()
    (pkg / "data").symlink_to(tmp_path / "outside")  # the attacker swaps it in
    with pytest.raises(ConfigError, match="symbolic link"):
        open_dir(config.files[3].path, str(pkg), "data")


def test_the_keep_checks_again_whatever_the_host_checked(tmp_path):
    """The keep gets the package's text and root and opens the directory itself: with the host-side check
    skipped (as if the link had been swapped in after it), the keep still refuses and never runs."""
    pkg = make_package(tmp_path, "data")
    (pkg / "data").symlink_to(tmp_path / "outside")
    request = LaunchRequest(module_name="main.wasm", config_toml=(pkg / "Enarx.toml").read_text(),
                            config_source=str(pkg / "Enarx.toml"), package_dir=str(pkg))
    out: list[bytes] = []
    keep = pick_backend("nil").launch()
    report = Supervisor(keep, Stdio(stdin=None, stdout=out.append, stderr=out.append)).run(
        request, (pkg / "main.wasm").read_bytes(), relay_stdin=False)
    assert report.status != 0 and "symbolic link" in (report.error or "")
    assert out == [] and not (tmp_path / "outside" / "hello.txt").exists()


def test_a_directory_inside_the_package_works(tmp_path):
    pkg = make_package(tmp_path, "./data")
    (pkg / "data").mkdir()
    proc = enarx("run", pkg)
    assert proc.returncode == 0, proc.stderr
    assert (pkg / "data" / "hello.txt").read_text() == "written by wasm\n"


def test_a_link_inside_the_directory_cannot_be_followed_out(tmp_path):
    pkg = make_package(tmp_path, "data", args='["data/escape"]')
    (pkg / "data").mkdir()
    (pkg / "data" / "escape").symlink_to(tmp_path / "outside")
    proc = enarx("run", pkg)
    assert proc.returncode != 0
    assert not (tmp_path / "outside" / "hello.txt").exists()


def test_the_users_own_dir_and_wasmcfgfile_may_name_any_host_directory(tmp_path):
    outside = tmp_path / "outside"
    pkg = make_package(tmp_path, str(outside))
    cfg = tmp_path / "mine.toml"  # the same entries in a file the user names: the user's own choice
    cfg.write_text((pkg / "Enarx.toml").read_text())
    proc = enarx("run", "--wasmcfgfile", cfg, pkg)
    assert proc.returncode == 0, proc.stderr
    assert (outside / "hello.txt").read_text() == "written by wasm\n"
    os.unlink(outside / "hello.txt")
    (pkg / "Enarx.toml").write_text('args = ["/out"]\n' + STDIO)
    proc = enarx("run", "--dir", f"{outside}::/out", pkg)
    assert proc.returncode == 0, proc.stderr
    assert (outside / "hello.txt").read_text() == "written by wasm\n"
