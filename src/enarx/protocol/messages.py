"""The JSON messages carried by LAUNCH and EXIT frames, with strict validation on decode."""

from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple

from enarx.protocol.frames import MAX_ATTACHMENTS, PROTOCOL_VERSION, ProtocolError

_U32 = struct.Struct(">I")


class LaunchRequest(NamedTuple):
    """What the host asks a keep to run: the package (module + Enarx.toml text) plus host-side options.

    The keep, not the host, interprets the Enarx.toml: in a hardware keep the host is untrusted, so the
    host only relays the package and the user's command-line additions.
    """

    module_name: str
    config_toml: str | None = None  # Enarx.toml text; None = plain WASI semantics
    config_source: str | None = None  # where the Enarx.toml came from, for messages
    package_dir: str | None = None  # a package's own Enarx.toml: its paths must stay inside this directory
    args: list[str] | tuple[str, ...] = ()  # appended after the config's args
    env: list[tuple[str, str]] | tuple[()] = ()  # --env additions
    dirs: list[tuple[str, str, bool]] | tuple[()] = ()  # --dir (host, guest, writable)
    memory_limit: int | None = None
    timeout: float | None = None
    cache_dir: str | None = None
    log_level: str | None = None
    simulate_tee: str | None = None  # "sev-snp": attest with simulated evidence (testing without hardware)
    simulator_dir: str | None = None  # where the simulator's persistent test PKI lives
    attachments: list[tuple[str, int]] | tuple[()] = ()  # (kind, size) sent in ATTACH frames after LAUNCH
    forwards: dict[str, list[list[Any]]] | None = None  # a VM keep's network: see docs/protocol.md
    volumes: list[tuple[str, str]] | tuple[()] = ()  # (disk serial, host directory): read-only copies (kvm)
    shares: list[tuple[str, str, bool]] | tuple[()] = ()  # (virtiofs tag, host directory, writable): live (kvm)
    # `enarx deploy`: the keep fetches its package itself (the module bytes of the frame are then empty)
    package_url: str | None = None  # https URL of a registry tag (or of a .wasm)
    package_root: str | None = None  # the tag entry the host resolved (canonical JSON): bound into the evidence
    steward_url: str | None = None  # attest here before fetching (the fetch then presents the certificate)
    ca_bundle_pem: str | None = None  # extra roots for the keep's TLS clients (registry, Steward, key broker)
    await_push: bool = False  # start empty and wait for an encrypted package pushed through PUSH frames
    publisher_key_pem: str | None = None  # run only packages this key signed (pushed: also bound in host data)
    kbs_url: str | None = None  # the key broker holding a deployed encrypted package's key
    isolation: str | None = None  # nil/emulated keeps: the label the keep declares in its CSR (no isolation)
    protocol: int = PROTOCOL_VERSION

    def encode(self, module: bytes) -> bytes:
        header = json.dumps(self._asdict(), separators=(",", ":")).encode()
        return _U32.pack(len(header)) + header + module

    @classmethod
    def decode(cls, payload: bytes) -> tuple[LaunchRequest, memoryview]:
        if len(payload) < 4:
            raise ProtocolError("LAUNCH frame too short")
        (n,) = _U32.unpack_from(payload)
        if n > len(payload) - 4:
            raise ProtocolError("LAUNCH header length exceeds the frame")
        try:
            doc = json.loads(payload[4 : 4 + n])
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ProtocolError(f"LAUNCH header is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ProtocolError("LAUNCH header must be a JSON object")
        if doc.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(
                f"unsupported protocol version {doc.get('protocol')!r}; this keep speaks {PROTOCOL_VERSION}"
            )
        try:
            req = cls(
                module_name=_typed(doc, "module_name", str),
                config_toml=_typed(doc, "config_toml", str, optional=True),
                config_source=_typed(doc, "config_source", str, optional=True),
                package_dir=_typed(doc, "package_dir", str, optional=True),
                args=_str_list(doc.get("args", [])),
                env=[tuple(_str_list(p, 2)) for p in _list(doc.get("env", []))],  # type: ignore[misc]
                dirs=[_dir(d) for d in _list(doc.get("dirs", []))],
                memory_limit=_typed(doc, "memory_limit", int, optional=True),
                timeout=_number(doc.get("timeout")),
                cache_dir=_typed(doc, "cache_dir", str, optional=True),
                log_level=_typed(doc, "log_level", str, optional=True),
                simulate_tee=_typed(doc, "simulate_tee", str, optional=True),
                simulator_dir=_typed(doc, "simulator_dir", str, optional=True),
                attachments=_attachments(doc.get("attachments", [])),
                forwards=_forwards(doc.get("forwards")),
                volumes=[tuple(_str_list(v, 2)) for v in _list(doc.get("volumes", []))],  # type: ignore[misc]
                shares=[_dir(s, "shares") for s in _list(doc.get("shares", []))],
                package_url=_typed(doc, "package_url", str, optional=True),
                package_root=_typed(doc, "package_root", str, optional=True),
                steward_url=_typed(doc, "steward_url", str, optional=True),
                ca_bundle_pem=_typed(doc, "ca_bundle_pem", str, optional=True),
                await_push=_flag(doc.get("await_push", False)),
                publisher_key_pem=_typed(doc, "publisher_key_pem", str, optional=True),
                kbs_url=_typed(doc, "kbs_url", str, optional=True),
                isolation=_isolation(doc.get("isolation")),
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed LAUNCH header: {exc}") from None
        return req, memoryview(payload)[4 + n :]


class ExitReport(NamedTuple):
    """How the workload ended. ``kind``: exit, trap, timeout, signal, error."""

    status: int
    kind: str = "exit"
    error: str | None = None

    def encode(self) -> bytes:
        return json.dumps(self._asdict()).encode()

    @classmethod
    def decode(cls, payload: bytes) -> ExitReport:
        try:
            doc = json.loads(payload)
            status = doc["status"]
            kind = doc.get("kind", "exit")
            error = doc.get("error")
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise ProtocolError(f"malformed EXIT frame: {exc}") from None
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 255:
            raise ProtocolError(f"malformed EXIT frame: status {status!r}")
        if not isinstance(kind, str) or not (error is None or isinstance(error, str)):
            raise ProtocolError("malformed EXIT frame: kind/error types")
        return cls(status=status, kind=kind, error=error)


class Started(NamedTuple):
    """STARTED: the workload is instantiated and about to run; ``listening`` = where each listener is bound."""

    protocol: int = PROTOCOL_VERSION
    listening: list[dict[str, Any]] = []  # noqa: RUF012 - a NamedTuple default, never mutated

    def encode(self) -> bytes:
        return json.dumps(self._asdict()).encode()

    @classmethod
    def decode(cls, payload: bytes) -> Started:
        """Lenient: the host only shows this information, so a malformed field is dropped, not fatal."""
        doc = json_object(payload)
        listening = doc.get("listening")
        items = [item for item in listening if isinstance(item, dict)] if isinstance(listening, list) else []
        protocol = doc.get("protocol")
        return cls(protocol if isinstance(protocol, int) else PROTOCOL_VERSION, items)


class PushEnd(NamedTuple):
    """PUSH_END: the keep is done with the owner's connection; ``accepted``: it got its package."""

    accepted: bool = False

    def encode(self) -> bytes:
        return json.dumps(self._asdict()).encode()

    @classmethod
    def decode(cls, payload: bytes) -> PushEnd:
        return cls(json_object(payload).get("accepted") is True)


class StopRequest(NamedTuple):
    """STOP: end the workload now, as if it had received ``signal`` (SIGINT, SIGTERM or SIGPIPE)."""

    signal: str = "SIGTERM"

    def encode(self) -> bytes:
        return json.dumps(self._asdict()).encode()

    @classmethod
    def decode(cls, payload: bytes) -> StopRequest:
        """Lenient: any malformed STOP still stops the keep, as SIGTERM."""
        signal = json_object(payload).get("signal", "SIGTERM")
        return cls(signal if isinstance(signal, str) else "SIGTERM")


def json_object(payload: bytes) -> dict[str, Any]:
    """The payload as a JSON object, or ``{}`` when it is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _typed(doc: dict[str, Any], key: str, typ: type, optional: bool = False) -> Any:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, typ) or isinstance(value, bool):
        raise TypeError(f"{key} must be {typ.__name__}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("await_push must be a boolean")
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("timeout must be a number")
    return float(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _str_list(value: Any, length: int | None = None) -> list[str]:
    items = _list(value)
    if not all(isinstance(v, str) for v in items) or (length is not None and len(items) != length):
        raise TypeError("expected a list of strings")
    return items


ATTACHMENT_KINDS = ("tree", "native")


def _attachments(value: Any) -> list[tuple[str, int]]:
    items = [_list(item) for item in _list(value)]
    out = []
    for item in items:
        if len(item) != 2 or item[0] not in ATTACHMENT_KINDS or not _is_int(item[1]) or item[1] < 0:
            raise TypeError(f"attachments entries are [{' or '.join(ATTACHMENT_KINDS)}, size]")
        out.append((item[0], item[1]))
    if len({kind for kind, _ in out}) != len(out) or sum(size for _, size in out) > MAX_ATTACHMENTS:
        raise TypeError(f"attachments must have distinct kinds and at most {MAX_ATTACHMENTS} bytes in all")
    return out


def _forwards(value: Any) -> dict[str, list[list[Any]]] | None:
    """``{"listen": [[fd, guest_port]], "connect": [[host, port, guest_addr, guest_port]]}``."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"listen", "connect"}:
        raise TypeError("forwards must be an object with listen and connect lists")
    listen = [_list(i) for i in _list(value.get("listen", []))]
    connect = [_list(i) for i in _list(value.get("connect", []))]
    if not all(len(i) == 2 and all(_is_port(v) for v in i) for i in listen):
        raise TypeError("forwards.listen entries are [fd, guest_port]")
    if not all(len(i) == 4 and isinstance(i[0], str) and isinstance(i[2], str) and _is_port(i[1])
               and _is_port(i[3]) for i in connect):
        raise TypeError("forwards.connect entries are [host, port, guest_addr, guest_port]")
    return {"listen": listen, "connect": connect}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_port(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= 65535


def _dir(value: Any, what: str = "dirs") -> tuple[str, str, bool]:
    items = _list(value)
    if len(items) != 3 or not isinstance(items[0], str) or not isinstance(items[1], str):
        raise TypeError(f"{what} entries are [string, string, writable]")
    if not isinstance(items[2], bool):
        raise TypeError(f"{what} writable must be a boolean")
    return items[0], items[1], items[2]


def _isolation(value: Any) -> str | None:
    from enarx.isolation import ISOLATION_LABELS

    if value is not None and value not in ISOLATION_LABELS:
        raise ValueError(f"isolation {str(value)[:80]!r} is not one of {', '.join(ISOLATION_LABELS)}")
    return value
