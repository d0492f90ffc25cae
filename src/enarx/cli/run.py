"""``enarx run``: run a WebAssembly module or package in a keep."""

from __future__ import annotations

import sys

import click

from enarx.errors import ConfigError


def _parse_env(values: tuple[str, ...]) -> list[tuple[str, str]]:
    env = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {item!r}: expected KEY=VALUE")
        env.append((key, value))
    return env


def _parse_dirs(values: tuple[str, ...]) -> list[tuple[str, str, bool]]:
    dirs = []
    for item in values:
        host, sep, guest = item.partition("::")
        if not host:
            raise ConfigError(f"--dir {item!r}: expected HOST[::GUEST]")
        dirs.append((host, guest if sep else host, True))
    return dirs


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--backend", envvar="ENARX_BACKEND", help="Keep backend: nil, kvm, sev, sgx, tdx (default: best).")
@click.option("--wasmcfgfile", envvar="ENARX_WASMCFGFILE", type=click.Path(dir_okay=False),
              help="Enarx.toml to use (default: the package's own, else plain WASI).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--dir", "dirs", multiple=True, metavar="HOST[::GUEST]",
              help="Preopen a host directory read-write (the host can see it).")
@click.option("--memory-limit", metavar="SIZE", help='Linear memory limit, e.g. 67108864 or "64MiB".')
@click.option("--timeout", metavar="SECONDS", help="Stop the workload after this much wall time.")
@click.option("--no-cache", is_flag=True, help="Do not use the compiled-module cache.")
@click.argument("module", type=click.Path())
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, backend: str | None, wasmcfgfile: str | None, env: tuple[str, ...],
        dirs: tuple[str, ...], memory_limit: str | None, timeout: str | None, no_cache: bool,
        module: str, args: tuple[str, ...]) -> None:
    """Run MODULE (a .wasm file or a package directory) in a keep; ARGS go to the workload.

    The workload's exit status becomes enarx's exit status. A trap exits 134, a timeout 124.
    """
    from enarx.api import KeepOptions
    from enarx.api import run as run_keep
    from enarx.config.parse import parse_size, parse_timeout

    try:
        memory = parse_size(memory_limit) if memory_limit is not None else None
    except ValueError as exc:
        raise ConfigError(f"--memory-limit: {exc}") from None
    try:
        seconds = parse_timeout(timeout) if timeout is not None else None
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    log_filter = (ctx.obj or {}).get("log_filter")
    options = KeepOptions(
        args=list(args),
        env=_parse_env(env),
        dirs=_parse_dirs(dirs),
        config_path=wasmcfgfile,
        backend=backend,
        memory_limit=memory,
        timeout=seconds,
        cache=not no_cache,
        log_level="debug" if log_filter and "debug" in log_filter.lower() else None,
    )
    result = run_keep(module, options)
    if result.error:
        click.echo(f"Error: {result.error}", err=True)
    sys.exit(result.status)
