"""A fast path for the common ``enarx run`` command line that does not load click.

It understands exactly the options of ``enarx run`` (same names, ``--opt value`` and ``--opt=value``, the
same environment variables) and nothing else: anything it does not recognise — ``--help``, a global option,
a typo, a missing value — returns ``None`` and the full click CLI handles it, with click's messages. Both
paths end in :func:`enarx.cli.run.execute`, so they behave the same.
"""

from __future__ import annotations

import os

VALUE_OPTIONS = {"--backend": "backend", "--wasmcfgfile": "wasmcfgfile", "--memory-limit": "memory_limit",
                 "--timeout": "timeout", "--simulate-tee": "simulate_tee",
                 "--simulator-pki": "simulator_pki", "--ca-bundle": "ca_bundle"}
MULTI_OPTIONS = {"--env": "env", "--dir": "dirs"}
FLAGS = {"--no-cache": "no_cache"}


def parse_run(argv: list[str]) -> dict | None:
    """Keyword arguments for :func:`enarx.cli.run.execute`, or ``None`` to defer to click."""
    if not argv or argv[0] != "run" or os.environ.get("ENARX_LOG"):
        return None
    opts: dict = {"backend": os.environ.get("ENARX_BACKEND") or None,
                  "wasmcfgfile": os.environ.get("ENARX_WASMCFGFILE") or None,
                  "memory_limit": None, "timeout": None, "simulate_tee": None, "simulator_pki": None, "ca_bundle": None, "env": [], "dirs": [], "no_cache": False}
    i = 1
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if name in FLAGS and not eq:
            opts[FLAGS[name]] = True
            i += 1
            continue
        if name not in VALUE_OPTIONS and name not in MULTI_OPTIONS:
            return None
        if not eq:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            i += 1
        i += 1
        if name in MULTI_OPTIONS:
            opts[MULTI_OPTIONS[name]].append(value)
        else:
            opts[VALUE_OPTIONS[name]] = value
    if i >= len(argv):
        return None
    opts["module"] = argv[i]
    opts["args"] = argv[i + 1:]
    opts["env"] = tuple(opts["env"])
    opts["dirs"] = tuple(opts["dirs"])
    return opts
