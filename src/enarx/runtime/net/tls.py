"""TLS ended inside the keep: TLS 1.3 only, the keep identity on both sides."""

from __future__ import annotations

import ssl

from enarx.runtime.identity import KeepIdentity


def _tls13_only(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def server_context(identity: KeepIdentity, client_ca: str | None = None) -> ssl.SSLContext:
    """For ``listen`` sockets; with ``client_ca`` only clients holding a certificate from it are served."""
    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    identity.load_into(ctx)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=client_ca)
    return ctx


def client_context(identity: KeepIdentity, ca: str | None = None) -> ssl.SSLContext:
    """For ``connect`` sockets: the system roots plus an optional private CA bundle; name check = host."""
    ctx = _tls13_only(ssl.create_default_context(ssl.Purpose.SERVER_AUTH))
    if ca:
        ctx.load_verify_locations(cafile=ca)
    identity.load_into(ctx)
    return ctx
