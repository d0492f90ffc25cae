"""``enarx config init`` and ``enarx config check``."""

from __future__ import annotations

import os

import click

from enarx.errors import ConfigError


@click.group()
def config() -> None:
    """Create and validate Enarx.toml files."""


@config.command()
@click.argument("path", default="Enarx.toml", type=click.Path(dir_okay=False))
def init(path: str) -> None:
    """Write a commented Enarx.toml template (refuses to overwrite)."""
    from enarx.config import TEMPLATE

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} does already exist; remove it or choose another path") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(TEMPLATE)
    click.echo(f"Wrote {path}")


@config.command()
@click.argument("path", default="Enarx.toml", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the effective configuration as JSON.")
def check(path: str, as_json: bool) -> None:
    """Validate an Enarx.toml exactly as `enarx run` does and print the effective configuration.

    PATH is an Enarx.toml (checked as `enarx run --wasmcfgfile PATH` would use it: the user's own file,
    which may name any host directory) or a package directory (its Enarx.toml checked as `enarx run DIR`
    would: its paths must stay inside the package).
    """
    import json

    import tomli_w

    from enarx.config import load_config
    from enarx.config.validate import check_config

    package_root = None
    if os.path.isdir(path):
        package_root, path = path, os.path.join(path, "Enarx.toml")
    cfg = load_config(path, package=package_root is not None)
    for warning in check_config(cfg, package_root=package_root):
        click.echo(f"warning: {warning}", err=True)
    doc = cfg.to_dict()
    env = [("FD_COUNT", str(len(cfg.files))), ("FD_NAMES", ":".join(cfg.fd_names()))]
    if as_json:
        click.echo(json.dumps({"config": doc, "injected_env": dict(env)}, indent=2))
        return
    click.echo(f"# {path} is valid. Effective configuration:")
    click.echo(f"# injected before env: {' '.join(f'{k}={v}' for k, v in env)}")
    click.echo(tomli_w.dumps(doc), nl=False)
