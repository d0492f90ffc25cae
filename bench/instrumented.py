"""Run ``python -m MODULE ARGS`` (e.g. ``-m enarx steward serve …``) with benchmark switches set in-process.

    python bench/instrumented.py [--no-memo] [--count FILE] -m enarx steward serve …

``--no-memo`` turns off the verifier's memo of successful signature checks, so every request does all of
its signature work (the *cold* case). ``--count FILE`` counts signature operations (:mod:`cryptocount`) in
the process (use one worker: forked workers keep their own counts); on ``SIGUSR1`` the counts so far are
written to FILE as JSON, so a benchmark can take the difference over a number of requests.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cryptocount


def memo_off() -> Callable[[], None]:
    """Make every Verifier built from now on run with its signature memo off; returns the undo.

    The one place to adapt when the verifier's memo moves or changes."""
    try:
        from enarx.attestation.verifier import Verifier
    except ImportError as exc:
        raise SystemExit(f"Error: cannot turn the signature memo off ({exc}): adapt bench/instrumented.py") from None
    original = Verifier.__init__

    @functools.wraps(original)
    def cold_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["memo"] = False
        original(self, *args, **kwargs)

    Verifier.__init__ = cold_init  # type: ignore[method-assign]

    def undo() -> None:
        Verifier.__init__ = original  # type: ignore[method-assign]

    return undo


def dump(ops: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([[kind, algorithm, n] for (kind, algorithm), n in ops.items()]))
    os.replace(tmp, path)


def load(path: Path) -> cryptocount.Counter:
    return cryptocount.Counter({(kind, algorithm): n for kind, algorithm, n in json.loads(path.read_text())})


def main() -> None:
    args = sys.argv[1:]
    count = None
    while args and args[0] != "-m":
        flag = args.pop(0)
        if flag == "--no-memo":
            memo_off()
        elif flag == "--count":
            count = Path(args.pop(0))
        else:
            raise SystemExit(f"Error: unknown option {flag}")
    if len(args) < 2:
        raise SystemExit("Error: usage: instrumented.py [--no-memo] [--count FILE] -m MODULE [ARGS…]")
    module = args[1]
    sys.argv = [module, *args[2:]]
    if count is None:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    with cryptocount.counting() as ops:
        signal.signal(signal.SIGUSR1, lambda *_: dump(ops, count))
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
