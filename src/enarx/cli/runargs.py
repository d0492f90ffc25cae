"""The one parser of ``enarx run``'s command line, used by the click-free fast path and the click command.

Importing click costs more than the rest of a warm ``enarx run``, so ``enarx run ...`` is parsed here without
it (``enarx.cli.entry``); ``enarx --global-option run ...`` reaches the same parser through click
(``enarx.cli.run``), which also builds ``--help`` from :data:`OPTIONS`. One table and one parser: the two
paths cannot disagree about an option, a value or an error.

Like click: ``--opt value`` and ``--opt=value``, a repeated single-valued option keeps the last value,
``--`` ends the options, and everything after MODULE belongs to the workload.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from enarx.errors import UsageError

HELP_OPTIONS = ("-h", "--help")


class Option(NamedTuple):
    name: str
    dest: str
    kind: str  # "value", "multi" (repeatable) or "flag"
    metavar: str
    help: str
    envvar: str | None = None
    choices: tuple[str, ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option("--backend", "backend", "value", "NAME",
           "Keep backend: nil, kvm, sev, sgx or tdx (default: the most protective available).",
           envvar="ENARX_BACKEND"),
    Option("--wasmcfgfile", "wasmcfgfile", "value", "PATH",
           "Enarx.toml to use (default: the package's own, else plain WASI).", envvar="ENARX_WASMCFGFILE"),
    Option("--env", "env", "multi", "KEY=VALUE", "Set an environment variable (repeatable)."),
    Option("--dir", "dirs", "multi", "HOST[::GUEST]",
           "Preopen a host directory read-write (repeatable; the host can see it)."),
    Option("--memory-limit", "memory_limit", "value", "SIZE", 'Linear memory limit, e.g. 67108864 or "64MiB".'),
    Option("--timeout", "timeout", "value", "SECONDS", "Stop the workload after this much wall time."),
    Option("--no-cache", "no_cache", "flag", "", "Do not use the compiled-module cache."),
    Option("--simulate-tee", "simulate_tee", "value", "[sev-snp|tdx|sgx]",
           "Attest with SIMULATED evidence (testing without hardware; a Steward must opt in).",
           choices=("sev-snp", "tdx", "sgx")),
    Option("--simulator-pki", "simulator_pki", "value", "DIR",
           "The simulator's test PKIs (default: $ENARX_CACHE_DIR/simulator)."),
    Option("--ca-bundle", "ca_bundle", "value", "PEM",
           "CA certificates the keep trusts for an https Steward under a private CA (default: "
           "$ENARX_CA_BUNDLE), added to the system roots."),
)
_BY_NAME = {option.name: option for option in OPTIONS}


class RunCommandLine(NamedTuple):
    """A parsed ``enarx run``: the workload, its arguments and the keep's options (``KeepOptions`` fields)."""

    module: str
    args: list[str]
    options: dict


def usage_error(message: str) -> UsageError:
    return UsageError(f"{message} (see `enarx run --help`)")


def parse(argv: list[str]) -> RunCommandLine | None:
    """Parse the arguments after ``run``; ``None`` when help was asked for. Raises :class:`UsageError`."""
    raw: dict[str, object] = {o.dest: [] if o.kind == "multi" else None for o in OPTIONS}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in HELP_OPTIONS:
            return None
        name, eq, value = arg.partition("=")
        option = _BY_NAME.get(name)
        if option is None:
            raise usage_error(f"No such option: {name}.{_did_you_mean(name)}")
        i += 1
        if option.kind == "flag":
            if eq:
                raise usage_error(f"Option '{name}' does not take a value.")
            raw[option.dest] = True
            continue
        if not eq:
            if i >= len(argv):
                raise usage_error(f"Option '{name}' requires an argument.")
            value = argv[i]
            i += 1
        if option.kind == "multi":
            raw[option.dest].append(value)  # type: ignore[union-attr]
        else:
            raw[option.dest] = value
    if i >= len(argv):
        raise usage_error("Missing argument 'MODULE'.")
    if not argv[i]:
        raise usage_error("MODULE: expected a .wasm file or a package directory, got ''")
    where = {option.dest: option.name for option in OPTIONS}
    for option in OPTIONS:
        if option.envvar and raw[option.dest] is None and os.environ.get(option.envvar):
            raw[option.dest] = os.environ[option.envvar]
            where[option.dest] = f"{option.name} (from ${option.envvar})"
    return RunCommandLine(module=argv[i], args=argv[i + 1:], options=_convert(raw, where))


def _convert(raw: dict, where: dict[str, str]) -> dict:
    """Check every value and turn it into what :class:`enarx.api.KeepOptions` takes."""
    from enarx.config.parse import parse_size, parse_timeout

    for option in OPTIONS:
        value = raw[option.dest]
        if option.choices and value is not None and value not in option.choices:
            raise usage_error(f"{where[option.dest]}: {value!r} is not one of {', '.join(option.choices)}")
    if raw["backend"] is not None:
        from enarx.backends.registry import BACKENDS

        names = [backend.name for backend in BACKENDS]
        if raw["backend"].lower() not in names:
            raise usage_error(f'{where["backend"]}: Keep backend identifier "{raw["backend"]}" is unknown. '
                              f'Known backends: {", ".join(names)}.')
    try:
        memory = parse_size(raw["memory_limit"]) if raw["memory_limit"] is not None else None
    except ValueError as exc:
        raise usage_error(f"--memory-limit: {exc}") from None
    try:
        timeout = parse_timeout(raw["timeout"]) if raw["timeout"] is not None else None
    except ValueError as exc:
        raise usage_error(f"--timeout: {exc}") from None
    env = {}
    for item in raw["env"]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise usage_error(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    dirs = []
    for item in raw["dirs"]:
        host, sep, guest = item.partition("::")
        if not host or (sep and not guest):
            raise usage_error(f"--dir {item!r}: expected HOST[::GUEST]")
        dirs.append((host, guest if sep else host, True))
    for name in ("wasmcfgfile", "simulator_pki", "ca_bundle"):
        if raw[name] == "":
            raise usage_error(f"{where[name]}: expected a path, got ''")
    return {"backend": raw["backend"], "config_path": raw["wasmcfgfile"], "env": env, "dirs": dirs,
            "memory_limit": memory, "timeout": timeout, "cache": not raw["no_cache"],
            "simulate_tee": raw["simulate_tee"], "simulator_dir": raw["simulator_pki"], "ca_bundle": raw["ca_bundle"]}


def _did_you_mean(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, [*_BY_NAME, "--help"], n=1)
    return f" Did you mean {close[0]}?" if close else ""
