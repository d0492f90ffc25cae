"""The body of ``enarx run``, free of click so that the fast path (``enarx.cli.fastrun``) can use it too."""

from __future__ import annotations

import os
import sys

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


def execute(*, backend: str | None, wasmcfgfile: str | None, env: tuple[str, ...], dirs: tuple[str, ...],
            memory_limit: str | None, timeout: str | None, no_cache: bool, module: str, args: list[str],
            log_filter: str | None = None, simulate_tee: str | None = None,
            simulator_pki: str | None = None, ca_bundle: str | None = None) -> None:
    """Run the keep and exit with its status (shared by the click command and the fast path)."""
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
        simulate_tee=simulate_tee,
        simulator_dir=simulator_pki,
        ca_bundle=ca_bundle,
    )
    if simulate_tee:
        sys.stderr.write(f"warning: attesting with SIMULATED {simulate_tee} evidence: no hardware protects "
                         "this keep\n")
    result = run_keep(module, options, on_started=report_listening)
    if result.error:
        sys.stderr.write(f"Error: {result.error}\n")
        sys.stderr.flush()
    sys.exit(result.status)


def report_listening(info: dict) -> None:
    """Tell the user where each listener is bound (the port matters with ``port = 0``)."""
    for item in info.get("listening", []):
        if isinstance(item, dict):
            addr = str(item.get("addr", ""))
            host = f"[{addr}]" if ":" in addr else addr
            sys.stderr.write(f"enarx: {item.get('name')} ({item.get('prot')}) listening on "
                             f"{host}:{item.get('port')}\n")
    sys.stderr.flush()


def run_fast(opts: dict) -> None:
    """Execute a command line parsed by the fast path, with the CLI's error conventions."""
    from enarx.cli.exits import exit_with_error

    try:
        execute(**opts)
    except SystemExit as done:  # the normal end: skip interpreter teardown, it only costs start-up budget
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else 1)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - reported as one line, like the click CLI
        exit_with_error(exc)
