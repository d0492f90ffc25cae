"""Parse and validate Enarx.toml. Every error names the file, the key and the problem.

Rules follow Enarx's ``enarx-config`` crate: unknown top-level keys are ignored (we log a warning),
each ``[[files]]`` variant rejects unknown fields, ``prot`` is required on sockets, tcp defaults to
port 80 and tls to 443, ``listen.addr`` defaults to ``::``, names must not contain ``:``, and a file
that omits ``[[files]]`` gets no file descriptors at all.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from enarx.config.confine import check_relative
from enarx.config.model import (
    DEFAULT_PORTS,
    Config,
    ConnectFile,
    DirFile,
    FileEntry,
    Limits,
    ListenFile,
    NullFile,
    Secret,
    SecretsFile,
    StdioFile,
)
from enarx.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000  # Enarx's limit for an Enarx.toml
KNOWN_TOP_LEVEL = {"steward", "args", "env", "files", "limits", "secrets"}

_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (required fields, optional fields) — besides "kind" itself
    "null": (set(), {"name"}),
    "stdin": (set(), {"name"}),
    "stdout": (set(), {"name"}),
    "stderr": (set(), {"name"}),
    "listen": ({"name", "prot"}, {"addr", "port", "client_ca"}),
    "connect": ({"host", "prot"}, {"name", "port", "ca"}),
    "dir": ({"path"}, {"name", "writable"}),
    "secrets": (set(), {"name"}),
}
_SECRET_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B|[KMGT])?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}


def load_config(path: str | os.PathLike[str], *, package: bool = False) -> Config:
    """Read and parse an Enarx.toml file (``package``: a package's own, whose paths stay inside it)."""
    return load_config_and_text(path, package=package)[0]


def load_config_and_text(path: str | os.PathLike[str], *, package: bool = False) -> tuple[Config, str]:
    """The parsed file and the text it was parsed from (a keep is sent the text, and parses it itself)."""
    source = str(path)
    text = read_config_text(path)
    base_dir = os.path.dirname(source) or "."
    return parse_config(text, source=source, base_dir=base_dir, package_root=base_dir if package else None), text


def read_config_text(path: str | os.PathLike[str]) -> str:
    """An Enarx.toml's text: at most 1 MB of UTF-8 (Enarx's limit), or a :class:`ConfigError` naming the file."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file; create one with `enarx config init`") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, expected an Enarx.toml file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return text


def parse_config(text: str, *, source: str = "Enarx.toml", base_dir: str | None = None,
                 package_root: str | None = None) -> Config:
    """Parse Enarx.toml text. Relative ``dir`` paths and CA bundles resolve against ``base_dir``.

    With ``package_root`` (a package's own Enarx.toml) those paths must be relative and stay inside it.
    """
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except (RecursionError, ValueError) as exc:  # pathological nesting
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None

    for key in doc:
        if key not in KNOWN_TOP_LEVEL:
            import logging

            logging.getLogger("enarx.config").warning("%s: unknown top-level key %r ignored", source, key)

    steward = doc.get("steward")
    if steward is not None:
        steward = _parse_steward(steward, source)

    args = doc.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{source}: args: expected an array of strings")
    _check_strings(args, f"{source}: args")

    env_doc = doc.get("env", {})
    if not isinstance(env_doc, dict):
        raise ConfigError(f"{source}: env: expected a table of string values")
    env: list[tuple[str, str]] = []
    for key, value in env_doc.items():
        if not isinstance(value, str):
            raise ConfigError(f"{source}: env.{key}: expected a string, got {_type_name(value)}")
        if "=" in key or "\0" in key or not key:
            raise ConfigError(f"{source}: env.{key!r}: variable names must be non-empty without '=' or NUL")
        _check_strings([value], f"{source}: env.{key}")
        env.append((key, value))

    files_doc = doc.get("files", [])
    if not isinstance(files_doc, list):
        raise ConfigError(f"{source}: files: expected an array of tables ([[files]])")
    files = tuple(_parse_file(entry, i, source, base_dir, package_root is not None)
                  for i, entry in enumerate(files_doc))

    if sum(isinstance(f, SecretsFile) for f in files) > 1:
        raise ConfigError(f"{source}: files: at most one entry of kind \"secrets\" (it holds every secret)")
    secrets = _parse_secrets(doc.get("secrets", []), source, {key for key, _ in env})

    limits = _parse_limits(doc.get("limits", {}), source)
    return Config(
        files=files, args=tuple(args), env=tuple(env), steward=steward, limits=limits, source=source,
        secrets=secrets,
    )


def _parse_secrets(value: Any, source: str, env_names: set[str]) -> tuple[Secret, ...]:
    """``[[secrets]]``: name (a file name), path (a package path, default ``secrets/<name>``), env."""
    if not isinstance(value, list):
        raise ConfigError(f"{source}: secrets: expected an array of tables ([[secrets]])")
    out: list[Secret] = []
    for i, entry in enumerate(value):
        where = f"{source}: secrets[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table with a `name`")
        unknown = set(entry) - {"name", "path", "env"}
        if unknown:
            raise ConfigError(f"{where}: unknown field `{min(unknown)}` (expected name, path, env)")
        if "name" not in entry:
            raise ConfigError(f"{where}: missing field `name`")
        name = _string(entry, "name", where)
        if not _SECRET_NAME.fullmatch(name) or name in (".", ".."):
            raise ConfigError(f"{where}.name: {name!r} is not a file name (1-128 of A-Z a-z 0-9 . _ -)")
        path = _string(entry, "path", where) if "path" in entry else f"secrets/{name}"
        parts = path.split("/")
        if os.path.isabs(path) or "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(f"{where}.path: {path!r} must be a relative path inside the package")
        env = _string(entry, "env", where) if "env" in entry else None
        if env is not None and not _ENV_NAME.fullmatch(env):
            raise ConfigError(f"{where}.env: {env!r} is not an environment variable name")
        if env is not None and env in env_names:
            raise ConfigError(f"{where}.env: {env} is set twice (in [env] too, or by another secret)")
        if any(s.name == name for s in out):
            raise ConfigError(f"{where}.name: secret {name!r} is declared twice")
        if env is not None:
            env_names.add(env)
        out.append(Secret(name, path, env))
    return tuple(out)


def _parse_steward(value: Any, source: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{source}: steward: expected a URL string, got {_type_name(value)}")
    from urllib.parse import urlsplit

    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{source}: steward: invalid URL {value!r}: {exc}") from None
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ConfigError(f"{source}: steward: expected an https:// URL, got {value!r}")
    from enarx.cabundle import check_service_url
    from enarx.errors import EnarxError

    try:
        check_service_url(value, "steward")
    except EnarxError as exc:
        raise ConfigError(f"{source}: steward: {exc}") from None
    return value


def _parse_file(entry: Any, index: int, source: str, base_dir: str | None, confined: bool) -> FileEntry:
    where = f"{source}: files[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table with a `kind`")
    kind = entry.get("kind")
    if kind is None:
        raise ConfigError(f"{where}: missing field `kind` (one of {', '.join(_FIELDS)})")
    if kind not in _FIELDS:
        raise ConfigError(f"{where}: unknown kind {kind!r}; expected one of {', '.join(_FIELDS)}")
    required, optional = _FIELDS[kind]
    present = set(entry) - {"kind"}
    unknown = present - required - optional
    if unknown:
        raise ConfigError(f"{where}: unknown field `{min(unknown)}` for kind {kind!r}")
    missing = required - present
    if missing:
        raise ConfigError(f"{where}: missing field `{min(missing)}` (required for kind {kind!r})")

    name = entry.get("name")
    if name is not None:
        name = _string(entry, "name", where)
        if ":" in name:
            raise ConfigError(f"{where}.name: file name must not contain ':'")
        _check_strings([name], f"{where}.name")

    if kind == "null":
        return NullFile(name=name if name is not None else "null")
    if kind in ("stdin", "stdout", "stderr"):
        return StdioFile(kind=kind, name=name if name is not None else kind)
    if kind == "secrets":
        return SecretsFile(name=name) if name is not None else SecretsFile()

    if kind == "dir":
        path = _string(entry, "path", where)
        if not path:
            raise ConfigError(f"{where}.path: must not be empty")
        if confined:
            check_relative(path, f"{where}.path")
        writable = entry.get("writable", False)
        if not isinstance(writable, bool):
            raise ConfigError(f"{where}.writable: expected true or false, got {_type_name(writable)}")
        host_path = os.path.normpath(path)
        if base_dir is not None and not os.path.isabs(host_path):
            host_path = os.path.normpath(os.path.join(base_dir, host_path))
        if name is None:
            name = os.path.basename(path.rstrip("/")) or path
            if ":" in name:
                raise ConfigError(f"{where}.name: file name must not contain ':' (set `name` explicitly)")
        return DirFile(path=host_path, name=name, writable=writable)

    prot = entry.get("prot")
    if prot not in DEFAULT_PORTS:
        raise ConfigError(f"{where}.prot: expected \"tcp\" or \"tls\", got {prot!r}")
    port = entry.get("port", DEFAULT_PORTS[prot])
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{where}.port: expected an integer from 0 to 65535, got {port!r}")

    if kind == "listen":
        addr = _string(entry, "addr", where) if "addr" in entry else "::"
        if not addr:
            raise ConfigError(f"{where}.addr: must not be empty")
        client_ca = _ca_path(entry, "client_ca", where, base_dir, confined)
        if client_ca is not None and prot != "tls":
            raise ConfigError(f"{where}.client_ca: only meaningful with prot = \"tls\"")
        assert name is not None  # required for listen
        return ListenFile(name=name, prot=prot, addr=addr, port=port, client_ca=client_ca)

    host = _string(entry, "host", where)
    if not host:
        raise ConfigError(f"{where}.host: must not be empty")
    ca = _ca_path(entry, "ca", where, base_dir, confined)
    if ca is not None and prot != "tls":
        raise ConfigError(f"{where}.ca: only meaningful with prot = \"tls\"")
    if name is None:
        name = host
        if ":" in name:
            raise ConfigError(f"{where}.name: file name must not contain ':' (host {host!r}; set `name`)")
    return ConnectFile(host=host, prot=prot, name=name, port=port, ca=ca)


def _ca_path(entry: dict[str, Any], key: str, where: str, base_dir: str | None, confined: bool) -> str | None:
    if key not in entry:
        return None
    value = _string(entry, key, where)
    if confined:
        check_relative(value, f"{where}.{key}")
    if base_dir is not None and not os.path.isabs(value):
        return os.path.normpath(os.path.join(base_dir, value))
    return value


def _parse_limits(doc: Any, source: str) -> Limits:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: limits: expected a table")
    unknown = set(doc) - {"memory", "timeout"}
    if unknown:
        raise ConfigError(f"{source}: limits: unknown field `{min(unknown)}` (expected memory, timeout)")
    memory = doc.get("memory")
    if memory is not None:
        try:
            memory = parse_size(memory)
        except ValueError as exc:
            raise ConfigError(f"{source}: limits.memory: {exc}") from None
    timeout = doc.get("timeout")
    if timeout is not None:
        try:
            timeout = parse_timeout(timeout)
        except ValueError as exc:
            raise ConfigError(f"{source}: limits.timeout: {exc}") from None
    return Limits(memory=memory, timeout=timeout)


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string such as ``"64MiB"``, ``"1.5G"`` or ``"4096"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 67108864 or \"64MiB\", got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"expected a size such as 67108864 or \"64MiB\", got {value!r}")
        number, unit = match.groups()
        size = int(float(number) * _SIZE_UNITS[(unit or "b").lower()])
    else:
        raise ValueError(f"expected a size such as 67108864 or \"64MiB\", got {_type_name(value)}")
    if size <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    if size > 1 << 48:
        raise ValueError(f"too large: {value!r}")
    return size


def parse_timeout(value: Any) -> float:
    """Seconds of wall time, a positive finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number of seconds, got {_type_name(value)}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return seconds


def _string(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {_type_name(value)}")
    return value


def _check_strings(values: list[str], where: str) -> None:
    for value in values:
        if "\0" in value:
            raise ConfigError(f"{where}: strings must not contain NUL characters")


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a float", str: "a string",
        list: "an array", dict: "a table",
    }.get(type(value), type(value).__name__)
