"""``enarx`` root command: global options, lazy subcommands, and one-line errors.

Every failure a user can cause prints ``Error: …`` on one line and exits non-zero; a traceback appears
only when logging is turned up to debug (``--log-filter debug``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

import click

from enarx import __version__

# name → (module, attribute); imported only when the subcommand runs
_SUBCOMMANDS = {
    "run": ("enarx.cli.run", "run"),
    "config": ("enarx.cli.config", "config"),
    "platform": ("enarx.cli.platform", "platform"),
    "attest": ("enarx.cli.attest", "attest"),
    "steward": ("enarx.cli.steward", "steward"),
    "keep": ("enarx.cli.keep", "keep"),
    "drawbridge": ("enarx.cli.drawbridge", "drawbridge"),
    "user": ("enarx.cli.registry", "user"),
    "repo": ("enarx.cli.registry", "repo"),
    "package": ("enarx.cli.registry", "package"),  # publish/info here, keygen/encrypt/inspect from package_crypto
    "deploy": ("enarx.cli.deploy", "deploy"),
    "kbs": ("enarx.cli.kbs", "kbs"),
    "push": ("enarx.cli.push", "push"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        for name, (module, _attr) in _SUBCOMMANDS.items():
            if importlib.util.find_spec(module) is not None:
                names.add(name)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _SUBCOMMANDS:
            module, attr = _SUBCOMMANDS[name]
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as exc:
                if exc.name == module:
                    return None
                raise
        return super().get_command(ctx, name)


def _setup_logging(log_filter: str | None, log_target: str, from_env: bool = False) -> None:
    if not log_filter:
        logging.getLogger("enarx").setLevel(logging.WARNING)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logging.getLogger("enarx").addHandler(handler)
        return
    level = log_filter.split(",")[-1].split("=")[-1].strip().upper()
    if level not in ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"):
        raise click.BadParameter(f"unknown log level {level.lower()!r}; use error, warn, info, debug or trace",
                                 param_hint="--log-filter (from $ENARX_LOG)" if from_env else "--log-filter")
    level = {"TRACE": "DEBUG", "WARN": "WARNING"}.get(level, level)
    stream = sys.stdout if log_target == "stdout" else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("enarx")
    root.addHandler(handler)
    root.setLevel(level)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-filter", envvar="ENARX_LOG", help="Log level: error, warn, info, debug or trace.")
@click.option("--log-target", default="stderr", show_default=True,
              type=click.Choice(["stdout", "stderr"], case_sensitive=False), help="Where logs go.")
@click.version_option(__version__, "--version", "-V", prog_name="enarx", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, log_filter: str | None, log_target: str) -> None:
    """Run WebAssembly workloads in Keeps (trusted execution environments)."""
    from_env = ctx.get_parameter_source("log_filter") == click.core.ParameterSource.ENVIRONMENT
    _setup_logging(log_filter, log_target.lower(), from_env)
    ctx.obj = {"log_filter": log_filter}


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the CLI and turn errors into one line and an exit status."""
    from enarx.cli.exits import Stopped, exit_with_error

    try:
        return cli.main(args=argv, prog_name="enarx", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `enarx` or `enarx attest`: show the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else "")
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("Error: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, with the way to more help
        from enarx.cli.exits import usage_status

        command = exc.ctx.command_path if exc.ctx is not None else "enarx"
        click.echo(f"Error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(usage_status(command))
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (Exception, KeyboardInterrupt, Stopped) as exc:  # noqa: BLE001 - EnarxError, signals, pipes, bugs
        exit_with_error(exc)
