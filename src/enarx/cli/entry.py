"""The console-script entry point, kept tiny on purpose.

For ``enarx run`` it forks the nil keep before anything else is imported, so the keep's runtime
(wasmtime) loads on one core while the host parses options and the Enarx.toml on the other: the
separate keep process then costs no extra start-up time. An unused pre-forked keep sees its channel
close when the host exits, and ends.
"""

import sys


def main() -> None:
    if "run" in sys.argv[1:]:
        from enarx.runtime.process import prefork

        prefork()
    from enarx.cli.main import main as cli_main

    cli_main()
