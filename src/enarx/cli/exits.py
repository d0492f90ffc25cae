"""How every ``enarx`` command ends on an error: one ``Error: …`` line and an exit status.

Shared by the click CLI and the click-free ``run`` fast path, so both report alike. A traceback is logged
only when logging is turned up to debug (``--log-filter debug``).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


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
