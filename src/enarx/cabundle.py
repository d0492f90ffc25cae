"""How the CLI and keeps trust the services they talk to (Steward, Drawbridge, key broker).

One option for all of them: ``--ca-bundle PEM`` or ``ENARX_CA_BUNDLE``. The bundle is added to the
system roots, never a replacement that silently drops them, and never a way to turn verification off.
Plain ``http://`` is accepted only for loopback addresses (development servers on this machine).
A connection refused (nothing listens there) is said as such, with what to check: :func:`refused`.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from urllib.parse import urlsplit

from enarx.errors import EnarxError

ENV = "ENARX_CA_BUNDLE"


def resolve(cli_value: str | os.PathLike[str] | None = None) -> str | None:
    """The CA bundle to use: the option if given, else ``$ENARX_CA_BUNDLE``; checked to be readable."""
    value = os.fspath(cli_value) if cli_value else os.environ.get(ENV) or None
    if value is None:
        return None
    if not os.path.isfile(value):
        source = "--ca-bundle" if cli_value else ENV
        raise EnarxError(f"{source}: CA bundle {value!r} does not exist or is not a file")
    return value


def client_context(ca_bundle: str | None = None, *, cadata: str | None = None) -> ssl.SSLContext:
    """A verifying TLS client context: system roots plus ``ca_bundle`` (a path) or ``cadata`` (its PEM text,
    as a keep receives it from the host), TLS 1.2 at least, names checked."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle or cadata:
        try:
            context.load_verify_locations(cafile=ca_bundle or None, cadata=cadata or None)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise EnarxError(f"cannot load CA bundle {ca_bundle or '(relayed PEM)'!r}: {exc}") from None
    return context


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_service_url(url: str, what: str) -> None:
    """https only; plain http only to a loopback address. ``what`` names the service in the error."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return
    raise EnarxError(f"refusing to use the {what} url {url!r}: use https (plain http only to loopback)")


def refused(exc: BaseException) -> bool:
    """Whether a failed request was refused: nothing listens at that address (a server not running, or a
    wrong URL). Sees through urllib's ``URLError.reason`` and httpx's chained errors."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        if isinstance(cause, ConnectionRefusedError):
            return True
        seen.append(cause)
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else cause.__cause__ or cause.__context__
    return False
