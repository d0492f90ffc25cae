"""``enarx run``: run a WebAssembly module or package in a keep.

The options are those of :data:`enarx.cli.runargs.OPTIONS`, parsed by :func:`enarx.cli.runargs.parse` —
the same parser as the click-free fast path; click only renders ``--help`` from them.
"""

from __future__ import annotations

import click

from enarx.cli.runargs import OPTIONS, RunCommandLine, parse
from enarx.cli.runner import execute


class RunCommand(click.Command):
    """A click command whose arguments are parsed by :func:`enarx.cli.runargs.parse`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        line = parse(args)
        if line is None:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit()
        ctx.params = {"line": line}
        ctx.args = []
        return []


def _help_params() -> list[click.Parameter]:
    params: list[click.Parameter] = [
        click.Option([o.name], metavar=o.metavar or None, help=o.help, is_flag=o.kind == "flag",
                     multiple=o.kind == "multi", envvar=o.envvar, show_envvar=o.envvar is not None,
                     type=click.Choice(o.choices) if o.choices else None)
        for o in OPTIONS
    ]
    return [*params, click.Argument(["module"]), click.Argument(["args"], nargs=-1)]


def _run(line: RunCommandLine) -> None:
    execute(line, log_filter=(click.get_current_context().find_root().obj or {}).get("log_filter"))


run = RunCommand(
    "run", callback=_run, params=_help_params(),
    help="Run MODULE (a .wasm file or a package directory) in a keep; ARGS go to the workload.\n\n"
         "The workload's exit status becomes enarx's; a timeout exits 124, Ctrl-C 130, a trap 134, "
         "SIGTERM 143, any other error 1 and a usage error 2.",
)
