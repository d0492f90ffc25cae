"""The body of ``enarx run``, free of click so that the fast path (``enarx.cli.entry``) can use it too."""

from __future__ import annotations

import os
import signal
import sys

from enarx.cli.exits import Stopped
from enarx.cli.runargs import RunCommandLine


def execute(line: RunCommandLine, log_filter: str | None = None) -> None:
    """Run the keep and exit with its status (shared by the click command and the fast path)."""
    from enarx.api import KeepOptions
    from enarx.api import run as run_keep

    options = KeepOptions(args=list(line.args),
                          log_level="debug" if log_filter and "debug" in log_filter.lower() else None,
                          **line.options)
    run_over = False

    def on_signal(signum: int, _frame: object) -> None:
        """While the keep runs, its supervisor forwards signals; this handler sees only the others.

        Before the run a signal ends ``enarx`` (128 + its number); after it, the run's own status is being
        reported, and a repeated signal (timeout(1) sends SIGTERM to enarx, then to its whole group) is
        ignored.
        """
        if not run_over:
            raise Stopped(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    result = run_keep(line.module, options, on_started=report_listening, on_warning=warn)
    run_over = True
    if result.error:
        sys.stderr.write(f"Error: {result.error}\n")
        sys.stderr.flush()
    sys.exit(result.status)


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def report_listening(info: dict) -> None:
    """Tell the user where each listener is bound (the port matters with ``port = 0``)."""
    for item in info.get("listening", []):
        if isinstance(item, dict):
            addr = str(item.get("addr", ""))
            host = f"[{addr}]" if ":" in addr else addr
            sys.stderr.write(f"enarx: {item.get('name')} ({item.get('prot')}) listening on "
                             f"{host}:{item.get('port')}\n")
    sys.stderr.flush()


def run_fast(argv: list[str]) -> None:
    """``enarx run ARGV...`` without click, with the CLI's error conventions; returns only for ``--help``."""
    from enarx.cli.exits import exit_with_error
    from enarx.cli.runargs import parse

    try:
        line = parse(argv)
        if line is None:
            return  # click renders the help
        execute(line)
    except SystemExit as done:  # the normal end: skip interpreter teardown, it only costs start-up budget
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else 1)
    except (Exception, KeyboardInterrupt, Stopped) as exc:  # noqa: BLE001 - one line, like the click CLI
        exit_with_error(exc)
