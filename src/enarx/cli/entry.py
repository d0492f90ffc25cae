"""The console-script entry point, kept tiny on purpose.

For ``enarx run`` it forks the nil keep before anything else is imported, so the keep's runtime
(wasmtime) loads while the host parses options and the Enarx.toml: the separate keep process then costs
no second interpreter start-up. An unused pre-forked keep sees its channel close when the host exits, and
ends. ``enarx run ...`` is then handled without loading click (:func:`enarx.cli.runner.run_fast`, with the
same parser as the click command); only ``enarx run --help`` goes on to click.
"""

import sys


def main() -> None:
    argv = sys.argv[1:]
    if "run" in argv:
        from enarx.runtime.process import prefork

        prefork()
        if argv[0] == "run" and not _logging_requested():
            from enarx.cli.runner import run_fast

            run_fast(argv[1:])
    from enarx.cli.main import main as cli_main

    cli_main()


def _logging_requested() -> bool:
    """``ENARX_LOG`` is the click group's ``--log-filter``: let click set logging up."""
    import os

    return bool(os.environ.get("ENARX_LOG"))
