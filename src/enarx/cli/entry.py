"""The console-script entry point, kept tiny on purpose.

For ``enarx run`` it forks the nil keep before anything else is imported, so the keep's runtime
(wasmtime) loads while the host parses options and the Enarx.toml: the separate keep process then costs
no second interpreter start-up. An unused pre-forked keep sees its channel close when the host exits, and
ends. A plain ``enarx run`` command line is then handled without loading click (``fastrun``).
"""

import sys


def main() -> None:
    argv = sys.argv[1:]
    if "run" in argv:
        from enarx.runtime.process import prefork

        prefork()
        if argv[0] == "run":
            from enarx.cli.fastrun import parse_run

            opts = parse_run(argv)
            if opts is not None:
                from enarx.cli.runner import run_fast

                run_fast(opts)
    from enarx.cli.main import main as cli_main

    cli_main()
