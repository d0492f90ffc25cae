"""How every ``enarx`` command ends on an error: one ``Error: …`` line and an exit status.

Shared by the click CLI and the click-free ``run`` fast path, so both report alike. A traceback is logged
only when logging is turned up to debug (``--log-filter debug``).

The convention (README, *Exit status*): 0 success; 1 an error (a file, a keep, a configuration, a
server); 2 a usage error (an unknown command or option, a missing or malformed argument), reported before
anything runs. Commands whose own statuses give 2 another meaning are listed in :data:`USAGE_STATUS`.
``enarx run`` exits with the workload's status, or 124 timeout, 130 interrupted, 134 trap, 141 broken
pipe, 143 terminated.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

#: ``attest verify`` exits 2 for "genuine but rejected", so its usage errors exit 1 (with I/O errors).
USAGE_STATUS = {"attest verify": 1}


def usage_status(command_path: str) -> int:
    """The status of a usage error in the command at ``command_path`` (``enarx attest verify``, or
    ``attest verify`` when the group is invoked on its own, as click's test runner does)."""
    for command, status in USAGE_STATUS.items():
        if command_path == command or command_path.endswith(" " + command):
            return status
    return 2


class Stopped(BaseException):
    """SIGINT or SIGTERM reached ``enarx`` while no keep was running to be stopped."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def exit_with_error(exc: BaseException) -> NoReturn:
    import logging

    from enarx.errors import EnarxError

    debug = logging.getLogger("enarx").isEnabledFor(logging.DEBUG)
    if isinstance(exc, EnarxError):
        if debug:
            logging.getLogger("enarx").error("details", exc_info=exc)
        _say(f"Error: {exc}")
        sys.exit(exc.exit_status)
    if isinstance(exc, KeyboardInterrupt):
        _say("Error: interrupted")
        sys.exit(130)
    if isinstance(exc, Stopped):
        import signal

        _say(f"Error: stopped by {signal.Signals(exc.signum).name}")
        sys.exit(128 + exc.signum)
    if isinstance(exc, BrokenPipeError):  # our reader went away: end quietly, as `head` expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    if debug:
        logging.getLogger("enarx").error("internal error", exc_info=exc)
    _say(f"Error: internal error: {type(exc).__name__}: {exc} (rerun with --log-filter debug for details)")
    sys.exit(1)


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
