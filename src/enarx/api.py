"""The Python API: configure and run a keep, and read how it ended. The CLI is a thin layer over this."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

from enarx.config import Config
from enarx.config.model import StdioFile
from enarx.config.parse import load_config_and_text
from enarx.host.supervisor import Sink, Source, Stdio, Supervisor
from enarx.protocol import LaunchRequest
from enarx.workload import load_workload


class KeepResult(NamedTuple):
    """How a keep ended. ``status`` is the process exit status; ``error`` explains anything but a clean exit.

    ``kind`` is ``exit`` (the workload's own status), ``trap``, ``timeout``, ``memory``, ``signal``,
    ``error`` (the keep could not run the workload) or ``crash``.
    """

    status: int
    kind: str = "exit"
    error: str | None = None
    started: dict | None = None  # run() passes its own dict

    @property
    def ok(self) -> bool:
        return self.status == 0


class KeepOptions(NamedTuple):
    """Everything that shapes one run besides the workload itself."""

    args: Sequence[str] = ()
    env: Sequence[tuple[str, str]] = ()
    dirs: Sequence[tuple[str, str, bool]] = ()  # (host path, guest path, writable)
    config_path: str | os.PathLike[str] | None = None  # an Enarx.toml; overrides a package's own
    backend: str | None = None
    memory_limit: int | None = None
    timeout: float | None = None
    cache: bool = True
    log_level: str | None = None
    simulate_tee: str | None = None  # attest with simulated SEV-SNP evidence (no hardware; testing only)
    simulator_dir: str | None = None  # the simulator's test PKI (default: in the cache directory)
    ca_bundle: str | os.PathLike[str] | None = None  # PEM CAs the keep trusts for an https Steward (else $ENARX_CA_BUNDLE)


def run(
    module: str | os.PathLike[str],
    options: KeepOptions | None = None,
    *,
    stdin: Source = 0,
    stdout: Sink = 1,
    stderr: Sink = 2,
    on_started: Callable[[dict], None] | None = None,
) -> KeepResult:
    """Run a workload (a ``.wasm`` file or a package directory) in a keep and wait for it to end.

    ``stdin`` may be a file descriptor, a binary file, ``bytes`` or ``None`` (EOF); ``stdout`` and
    ``stderr`` a file descriptor, a binary file, a callable taking ``bytes``, or ``None`` (discard).
    Raises :class:`enarx.errors.EnarxError` when the keep cannot be started.
    """
    from enarx.backends.registry import pick_backend
    from enarx.runtime.cachedir import default_cache_dir

    options = options or KeepOptions()
    workload = load_workload(module)
    config_path = options.config_path or workload.config_path
    config: Config | None = None
    config_text: str | None = None
    if config_path is not None:
        # validated here for a fast, clear error; the keep is sent the text and parses it again itself
        config, config_text = load_config_and_text(config_path)
        for entry in config.files:
            if entry.kind == "dir":
                _check_dir(entry.path)  # type: ignore[union-attr]
    for host, _guest, _writable in options.dirs:
        _check_dir(host)

    backend = pick_backend(options.backend)
    if options.log_level:
        import logging

        logging.getLogger("enarx").debug("using the %s backend", backend.name)
    request = LaunchRequest(
        module_name=workload.name,
        config_toml=config_text,
        config_source=str(config_path) if config_path is not None else None,
        args=list(options.args),
        env=[(k, v) for k, v in options.env],
        dirs=[(os.path.abspath(h), g, w) for h, g, w in options.dirs],
        memory_limit=options.memory_limit,
        timeout=options.timeout,
        cache_dir=str(default_cache_dir()) if options.cache and backend.name == "nil" else None,
        log_level=options.log_level,
        simulate_tee=options.simulate_tee,
        simulator_dir=os.path.abspath(options.simulator_dir) if options.simulator_dir else None,
        ca_bundle_pem=_ca_bundle_pem(options.ca_bundle, config),
    )
    if config is None:
        relay_stdin = True
    else:
        relay_stdin = bool(config.files) and isinstance(config.files[0], StdioFile) and config.files[0].kind == "stdin"
    started: dict = {}

    def note_started(info: dict) -> None:
        started.update(info)
        if on_started is not None:
            on_started(info)

    keep = backend.launch()
    supervisor = Supervisor(keep, Stdio(stdin=stdin if relay_stdin else None, stdout=stdout, stderr=stderr),
                            on_started=note_started)
    report = supervisor.run(request, workload.wasm, relay_stdin=relay_stdin)
    return KeepResult(status=report.status, kind=report.kind, error=report.error, started=started)


def _check_dir(path: str) -> None:
    from enarx.errors import ConfigError

    if not os.path.isdir(path):
        raise ConfigError(f"directory {path!r} does not exist (needed for a preopen)")


def _ca_bundle_pem(option: str | os.PathLike[str] | None, config: Config | None) -> str | None:
    """The PEM text of ``--ca-bundle`` (always checked when given) or of ``$ENARX_CA_BUNDLE`` (read only when
    the workload has a Steward to trust), relayed to the keep, which does the TLS."""
    from enarx import cabundle
    from enarx.errors import ConfigError

    if option is None and (config is None or not config.steward):
        return None
    path = cabundle.resolve(option)
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read CA bundle {path!r}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"CA bundle {path!r} holds no PEM certificate")
    return text
