"""The Python API: configure and run a keep, and read how it ended. The CLI is a thin layer over this.

    >>> import enarx
    >>> result = enarx.run("app.wasm", enarx.KeepOptions(args=["x"], env={"MODE": "demo"}),
    ...                    stdin=b"input", stdout=print, text=True)
    >>> result.status, result.kind, result.error
    (0, 'exit', None)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from enarx.config import Config
from enarx.config.model import StdioFile
from enarx.config.parse import load_config_and_text
from enarx.config.validate import check_config
from enarx.errors import ConfigError
from enarx.host.supervisor import Sink, Source, Stdio, Supervisor
from enarx.protocol import LaunchRequest
from enarx.workload import load_workload

#: The TEEs whose evidence the simulator issues (``KeepOptions.simulate_tee``, ``--simulate-tee``).
SIMULATED_TEES = ("sev-snp", "tdx", "sgx")
PUSHED_DIRS_REFUSED = ("--dir cannot be used with --await-push: the host may not add directories to a sealed package "
                       "(its publisher puts the files in the package)")


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
    """Everything that shapes one run besides the workload itself.

    ``args`` follow the config's ``args``; ``env`` is a mapping (or ``(key, value)`` pairs), added after the
    config's ``env``; ``dirs`` are ``(host path, guest path[, writable=True])`` preopens, visible to the host.
    """

    args: Sequence[str] = ()
    env: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    dirs: Sequence[tuple[str, str] | tuple[str, str, bool]] = ()
    config_path: str | os.PathLike[str] | None = None  # an Enarx.toml; overrides a package's own
    backend: str | None = None
    memory_limit: int | None = None
    timeout: float | None = None
    cache: bool = True
    log_level: str | None = None
    simulate_tee: str | None = None  # attest with simulated sev-snp/tdx/sgx evidence (no hardware; testing only)
    simulator_dir: str | None = None  # the simulator's test PKIs (default: in the cache directory)
    ca_bundle: str | os.PathLike[str] | None = None  # PEM CAs the keep trusts for an https Steward (else $ENARX_CA_BUNDLE)


def run(
    module: str | os.PathLike[str],
    options: KeepOptions | None = None,
    *,
    stdin: Source = 0,
    stdout: Sink = 1,
    stderr: Sink = 2,
    on_started: Callable[[dict], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    text: bool = False,
) -> KeepResult:
    """Run a workload (a ``.wasm`` file or a package directory) in a keep and wait for it to end.

    ``stdin`` may be a file descriptor, a binary file, ``bytes`` (``str`` with ``text=True``) or ``None``
    (EOF). ``stdout`` and ``stderr`` may be a file descriptor, a file, a callable, or ``None`` (discard).
    A callable is called with each chunk as it arrives from the keep (not line by line): ``bytes``, or with
    ``text=True`` ``str`` decoded as UTF-8 (a character split between chunks is kept whole; undecodable
    bytes become U+FFFD). So ``stdout=print`` shows ``b'...'`` unless ``text=True``, and then adds a newline
    per chunk: ``stdout=sys.stdout.write`` copies the output as it is. A file opened in text mode gets
    ``str``, a binary one ``bytes``. ``on_started`` receives what the keep reports once the workload runs
    (``{"listening": [{"name", "prot", "addr", "port"}, ...]}``); ``on_warning`` one line about a choice
    that weakens or does not do what it may seem to (default: the ``enarx`` logger).
    Raises :class:`enarx.errors.EnarxError` when the keep cannot be started.
    """
    from enarx.backends.registry import pick_backend
    from enarx.runtime.cachedir import default_cache_dir

    options = options or KeepOptions()
    env = _env_pairs(options.env)
    args = _strings(options.args, "args")
    dirs = _dir_triples(options.dirs)
    workload = load_workload(module)
    # A package's own Enarx.toml may not reach outside the package; one the user names is the user's own.
    config_path = options.config_path or workload.config_path
    package_root = None if options.config_path else workload.package_root
    config: Config | None = None
    config_text: str | None = None
    if config_path is not None:
        # checked here as `enarx config check` does, for a fast, clear error; the keep is sent the text and
        # checks it again itself
        config, config_text = load_config_and_text(config_path, package=package_root is not None)
        for warning in check_config(config, extra_dirs=len(dirs), package_root=package_root):
            _warn(on_warning, warning)
    for host, _guest, _writable in dirs:
        _check_dir(host)
    if options.simulate_tee:
        if options.simulate_tee not in SIMULATED_TEES:
            raise ConfigError(f"simulate_tee: {options.simulate_tee!r} is not one of {', '.join(SIMULATED_TEES)}")
        if options.simulator_dir and os.path.exists(options.simulator_dir) and not os.path.isdir(
                options.simulator_dir):
            raise ConfigError(f"{options.simulator_dir}: not a directory; the simulator's test PKIs live in a "
                              "directory (created when missing)")
        _warn(on_warning, _simulation_note(options, config, config_path))

    backend = pick_backend(options.backend)
    if options.log_level:
        import logging

        logging.getLogger("enarx").debug("using the %s backend", backend.name)
    request = LaunchRequest(
        module_name=workload.name,
        config_toml=config_text,
        config_source=str(config_path) if config_path is not None else None,
        package_dir=os.path.abspath(package_root) if package_root is not None else None,
        args=args,
        env=env,
        dirs=[(os.path.abspath(h), g, w) for h, g, w in dirs],
        memory_limit=options.memory_limit,
        timeout=options.timeout,
        # process keeps use the cache themselves; a kvm host compiles for its guest (it is trusted there)
        cache_dir=str(default_cache_dir()) if options.cache and backend.name in ("nil", "kvm") else None,
        log_level=options.log_level,
        simulate_tee=options.simulate_tee,
        simulator_dir=os.path.abspath(options.simulator_dir) if options.simulator_dir else None,
        ca_bundle_pem=_ca_bundle_pem(options.ca_bundle, config),
    )
    if config is None:
        relay_stdin = True
    else:
        relay_stdin = bool(config.files) and isinstance(config.files[0], StdioFile) and config.files[0].kind == "stdin"
    return _launch(backend, request, workload.wasm, relay_stdin, stdin, stdout, stderr, on_started, text)


def deploy(
    url: str,
    root: str | None,
    options: KeepOptions | None = None,
    *,
    steward: str | None = None,
    ca_bundle_pem: str | None = None,
    public: bool = False,
    kbs_url: str | None = None,
    publisher_key: str | os.PathLike[str] | None = None,
    stdin: Source = 0,
    stdout: Sink = 1,
    stderr: Sink = 2,
    on_started: Callable[[dict], None] | None = None,
    text: bool = False,
) -> KeepResult:
    """Run a package the keep fetches itself from ``url`` (a registry tag, checked against ``root``, the tag
    entry the host resolved); with ``steward`` the keep attests before it fetches. The host never sees the
    package's content. A registry package (``root`` given) runs with its own Enarx.toml only:
    ``options.config_path`` and ``options.dirs`` are refused (they serve an unbound ``.wasm`` URL). Only a
    ``public`` package's compiled module may go into the (process keep's) module cache. ``ca_bundle_pem``
    (default: the text of ``options.ca_bundle`` or ``$ENARX_CA_BUNDLE``) is what the keep trusts besides the
    system roots, for the registry, the Steward and the key broker. An encrypted package needs
    ``publisher_key`` (the deployer pins its publisher; the keep then refuses anything else) and ``kbs_url``
    (the key broker the keep attests to for its key)."""
    from enarx.backends.registry import pick_backend
    from enarx.runtime.cachedir import default_cache_dir
    from enarx.runtime.fetch import host_override

    options = options or KeepOptions()
    env, dirs = _env_pairs(options.env), _dir_triples(options.dirs)
    refusal = host_override(root is not None, options.config_path is not None, bool(dirs))
    if refusal is not None:
        raise ConfigError(refusal)
    if kbs_url is not None:
        from enarx import cabundle

        cabundle.check_service_url(kbs_url, "key broker")
    config_text: str | None = None
    if options.config_path is not None:
        config, config_text = load_config_and_text(options.config_path)
        steward = steward or config.steward
    for host, _guest, _writable in dirs:
        _check_dir(host)
    if ca_bundle_pem is None:
        from enarx import cabundle

        path = cabundle.resolve(options.ca_bundle)
        ca_bundle_pem = _bundle_text(path) if path else None
    backend = pick_backend(options.backend)
    request = LaunchRequest(
        module_name="main.wasm",
        config_toml=config_text,
        config_source=str(options.config_path) if options.config_path is not None else None,
        args=_strings(options.args, "args"),
        env=env,
        dirs=[(os.path.abspath(h), g, w) for h, g, w in dirs],
        memory_limit=options.memory_limit,
        timeout=options.timeout,
        cache_dir=str(default_cache_dir()) if public and options.cache and backend.name == "nil" else None,
        log_level=options.log_level,
        simulate_tee=options.simulate_tee,
        simulator_dir=os.path.abspath(options.simulator_dir) if options.simulator_dir else None,
        package_url=url,
        package_root=root,
        steward_url=steward,
        ca_bundle_pem=ca_bundle_pem,
        publisher_key_pem=_publisher_pem(publisher_key) if publisher_key is not None else None,
        kbs_url=kbs_url,
    )
    return _launch(backend, request, b"", True, stdin, stdout, stderr, on_started, text)


def _launch(backend, request: LaunchRequest, module: bytes, relay_stdin: bool, stdin: Source, stdout: Sink,
            stderr: Sink, on_started: Callable[[dict], None] | None, text: bool, push_listener=None) -> KeepResult:
    """Launch a keep on ``backend``, supervise it to its end, and say how it ended."""
    started: dict = {}

    def note_started(info: dict) -> None:
        started.update(info)
        if on_started is not None:
            on_started(info)

    if isinstance(stdin, str):
        stdin = stdin.encode()
    out, flush_out = _sink(stdout, text)
    err, flush_err = _sink(stderr, text)
    request = request._replace(isolation=backend.isolation)  # declared in the keep's CSR: a downgrade only
    keep = backend.launch(request, module)
    supervisor = Supervisor(keep, Stdio(stdin=stdin if relay_stdin else None, stdout=out, stderr=err),
                            on_started=note_started, push_listener=push_listener)
    try:
        report = supervisor.run(request, module, relay_stdin=relay_stdin)
    finally:
        flush_out()
        flush_err()
    return KeepResult(status=report.status, kind=report.kind, error=report.error, started=started)


def await_push(
    address: str,
    options: KeepOptions | None = None,
    *,
    publisher_key: str | os.PathLike[str] | None = None,
    stdin: Source = 0,
    stdout: Sink = 1,
    stderr: Sink = 2,
    on_waiting: Callable[[tuple[str, int]], None] | None = None,
    on_started: Callable[[dict], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    text: bool = False,
) -> KeepResult:
    """Start an empty keep that waits on ``address`` (``ADDR:PORT``) for its owner to push an encrypted package
    (``enarx push``), then run it. The host only relays the connection: it sees evidence and ciphertext.
    With ``publisher_key`` (a PEM public key file) the keep runs only packages that key signed, and its
    evidence says so (the key's thumbprint is its host data). ``on_waiting`` gets the address actually bound
    (port 0 picks one); the other arguments are :func:`run`'s.
    """
    from enarx.backends.registry import pick_backend
    from enarx.host.push_relay import listen

    options = options or KeepOptions()
    if options.config_path is not None:
        raise ConfigError("--wasmcfgfile cannot be used with --await-push: a pushed package brings its own Enarx.toml")
    if options.dirs:
        raise ConfigError(PUSHED_DIRS_REFUSED)
    env = _env_pairs(options.env)
    args = _strings(options.args, "args")
    publisher_pem = _publisher_pem(publisher_key) if publisher_key is not None else None
    if options.simulate_tee:
        if options.simulate_tee not in SIMULATED_TEES:
            raise ConfigError(f"simulate_tee: {options.simulate_tee!r} is not one of {', '.join(SIMULATED_TEES)}")
        _warn(on_warning, f"the keep will offer SIMULATED {options.simulate_tee} evidence to its owner: no hardware "
                          "protects it")
        if options.simulate_tee == "sgx" and publisher_pem is not None:
            _warn(on_warning, "an SGX keep's evidence cannot show the publisher pin (SGX has no launch-time host "
                              "data): the keep runs only that publisher's packages, but `enarx push` will find it "
                              "unpinned")
    backend = pick_backend(options.backend)
    try:
        listener = listen(address)
    except ValueError as exc:
        raise ConfigError(f"--await-push {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--await-push {address}: cannot listen: {exc.strerror or exc}") from None
    request = LaunchRequest(
        module_name="main.wasm",
        args=args,
        env=env,
        memory_limit=options.memory_limit,
        timeout=options.timeout,
        cache_dir=None,  # a pushed package is confidential: never the host's module cache
        log_level=options.log_level,
        simulate_tee=options.simulate_tee,
        simulator_dir=os.path.abspath(options.simulator_dir) if options.simulator_dir else None,
        ca_bundle_pem=_ca_bundle_pem(options.ca_bundle, None),
        await_push=True,
        publisher_key_pem=publisher_pem,
    )
    if on_waiting is not None:
        on_waiting(listener.getsockname()[:2])
    try:
        return _launch(backend, request, b"", True, stdin, stdout, stderr, on_started, text, listener)
    finally:
        listener.close()


def _publisher_pem(path: str | os.PathLike[str]) -> str:
    """The PEM public key of a publisher key file (the keep parses and checks it); a private key file's public
    half — only the public half ever reaches the keep."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
    except OSError as exc:
        raise ConfigError(f"cannot read publisher key {os.fspath(path)!r}: {exc.strerror}") from None
    text = data.decode("ascii", "replace")
    if text.lstrip().startswith("-----BEGIN PUBLIC KEY-----") and text.rstrip().endswith("-----END PUBLIC KEY-----"):
        return text
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        key = serialization.load_pem_private_key(data, None).public_key()
    except (ValueError, TypeError):
        raise ConfigError(f"{os.fspath(path)!r} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"{os.fspath(path)!r}: publisher keys are P-256, P-384 or Ed25519")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _env_pairs(env: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The environment as pairs, each key and value checked (a ``KEY=VALUE`` string is not a pair)."""
    pairs = list(env.items()) if isinstance(env, Mapping) else list(env)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ConfigError(f"env: expected a mapping of strings to strings (or (key, value) pairs), "
                              f"got {pair!r}")
        key, value = pair
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ConfigError(f"env: {key!r} is not a valid variable name (non-empty, no '=' or NUL)")
    return pairs


def _strings(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{what}: expected a list of strings, got {values!r}")
    return list(values)


def _dir_triples(dirs: Sequence[tuple]) -> list[tuple[str, str, bool]]:
    """``(host, guest[, writable])`` preopens; ``writable`` defaults to True, as with ``--dir``."""
    triples = []
    for item in dirs:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise ConfigError(f"dirs: expected (host path, guest path[, writable]) tuples, got {item!r}")
        host, guest, writable = (*item, True) if len(item) == 2 else item
        if not isinstance(guest, str) or not guest or not isinstance(writable, bool):
            raise ConfigError(f"dirs: {item!r}: the guest path must be a non-empty string, writable a bool")
        triples.append((os.fspath(host), guest, writable))
    return triples


def _check_dir(path: str, where: str = "") -> None:
    if not os.path.exists(path):
        raise ConfigError(f"{where}{path}: no such directory to preopen; create it or name an existing one")
    if not os.path.isdir(path):
        raise ConfigError(f"{where}{path}: not a directory; a preopen shares a directory (give the one "
                          "holding it)")


def _simulation_note(options: KeepOptions, config: Config | None, config_path: object) -> str:
    """Say what simulated evidence will do in this run: it matters only when a Steward is asked."""
    tee = options.simulate_tee
    if config is not None and config.steward:
        from enarx.runtime.cachedir import default_cache_dir

        pki = options.simulator_dir or os.path.join(default_cache_dir(), "simulator")
        return (f"attesting to {config.steward} with SIMULATED {tee} evidence (test PKI in {pki}): "
                "no hardware protects this keep")
    where = f"{config_path} names no `steward`" if config is not None else "there is no Enarx.toml with a `steward`"
    return f"SIMULATED {tee} evidence is not used: nothing is attested, as {where}"


def _warn(on_warning: Callable[[str], None] | None, message: str) -> None:
    if on_warning is not None:
        on_warning(message)
    else:
        import logging

        logging.getLogger("enarx").warning("%s", message)


def _sink(sink: Sink, text: bool) -> tuple[Sink, Callable[[], None]]:
    """The sink as the supervisor takes it (bytes), and what to call at the end to flush a decoder."""
    import io

    if isinstance(sink, io.TextIOBase) or (text and callable(sink) and not hasattr(sink, "write")):
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        write = sink.write if isinstance(sink, io.TextIOBase) else sink

        def decoded(data: bytes) -> None:
            if chunk := decoder.decode(data):
                write(chunk)
            if isinstance(sink, io.TextIOBase):
                sink.flush()

        def flush() -> None:
            if rest := decoder.decode(b"", final=True):
                write(rest)

        return decoded, flush
    return sink, lambda: None


def _ca_bundle_pem(option: str | os.PathLike[str] | None, config: Config | None) -> str | None:
    """The PEM text of ``--ca-bundle`` (always checked when given) or of ``$ENARX_CA_BUNDLE`` (read only when
    the workload has a Steward to trust), relayed to the keep, which does the TLS."""
    from enarx import cabundle

    if option is None and (config is None or not config.steward):
        return None
    path = cabundle.resolve(option)
    return _bundle_text(path) if path is not None else None


def _bundle_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read CA bundle {path!r}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"CA bundle {path!r} holds no PEM certificate")
    return text
