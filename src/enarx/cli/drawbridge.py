"""``enarx drawbridge serve``: the package registry server; ``enarx drawbridge gc``: its store's upkeep."""

from __future__ import annotations

import os

import click


@click.group()
def drawbridge() -> None:
    """Drawbridge: the package registry (users, repositories, tags, content-addressed trees)."""


@drawbridge.command()
@click.option("--addr", default="::", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TLS port (0: pick a free port and announce it).")
@click.option("--store", "store_dir", type=click.Path(file_okay=False),
              help="Directory of the embedded store (SQLite metadata + object files).")
@click.option("--database", metavar="URL", envvar="ENARX_DRAWBRIDGE_DATABASE",
              help="postgresql://… : keep metadata and objects in PostgreSQL (several servers, one registry).")
@click.option("--tls-crt", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Server certificate chain (PEM).")
@click.option("--tls-key", required=True, type=click.Path(exists=True, dir_okay=False), help="Server key (PEM).")
@click.option("--ca", "keep_ca", type=click.Path(exists=True, dir_okay=False),
              help="CA (e.g. the Steward's) whose client certificates are keeps; they read private "
                   "repositories only as the repository's keep policy allows.")
@click.option("--oidc-issuer", metavar="URL", help="OIDC issuer whose tokens are accepted (https; http only "
              "on loopback).")
@click.option("--oidc-audience", metavar="AUD", help="Audience the tokens must name.")
@click.option("--ca-bundle", metavar="PEM", help="Extra roots for reaching the OIDC issuer (or ENARX_CA_BUNDLE).")
@click.option("--quota", metavar="SIZE", callback=lambda _ctx, _param, value: _size(value),
              help="Bytes each user's tags may hold, e.g. 10GiB (every node counted; default: no limit).")
def serve(addr: str, port: int, store_dir: str | None, database: str | None, tls_crt: str, tls_key: str,
          keep_ca: str | None, oidc_issuer: str | None, oidc_audience: str | None, ca_bundle: str | None,
          quota: int | None) -> None:
    """Serve the Drawbridge API over TLS (``/api/v<semver>/…``, ``/health``, ``/metrics``)."""
    import ssl

    from enarx import cabundle
    from enarx.drawbridge.app import create_app
    from enarx.drawbridge.auth import OidcError, OidcVerifier
    from enarx.drawbridge.server import serve as run
    from enarx.drawbridge.server import server_context
    from enarx.drawbridge.store import StoreError, open_store
    from enarx.steward.server import configure_logging

    _check_store_options(store_dir, database)
    if bool(oidc_issuer) != bool(oidc_audience):
        raise click.UsageError("--oidc-issuer and --oidc-audience go together")
    try:
        context = server_context(tls_crt, tls_key, keep_ca)
    except (ssl.SSLError, OSError) as exc:
        raise click.ClickException(f"cannot load the TLS certificate, key or --ca: {exc}") from None
    oidc = None
    if oidc_issuer:
        assert oidc_audience is not None
        try:
            oidc = OidcVerifier(oidc_issuer, oidc_audience, cabundle.resolve(ca_bundle)).load()
        except OidcError as exc:
            raise click.ClickException(f"OIDC issuer: {exc}") from None
    try:
        store = open_store(store_dir, database)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging()
    import logging

    for name in ("enarx.drawbridge",):
        logging.getLogger(name).handlers[:] = logging.getLogger("enarx.steward").handlers
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
    if not oidc:
        click.echo("warning: no --oidc-issuer: the registry is read-only (anonymous reads of public "
                   "repositories)", err=True)
    try:
        run(create_app(store, oidc, quota), context, addr, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {addr} port {port}: {exc.strerror or exc}") from None
    finally:
        store.close()


def _size(value: str | None) -> int | None:
    from enarx.config.parse import parse_size

    if value is None:
        return None
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--quota") from None
    if size <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--quota")
    return size


def _check_store_options(store_dir: str | None, database: str | None) -> None:
    if bool(store_dir) == bool(database):
        raise click.UsageError("give either --store DIR or --database postgresql://…")
    if database and not database.startswith(("postgresql://", "postgres://")):
        raise click.BadParameter("expected a postgresql:// URL", param_hint="--database")


@drawbridge.command()
@click.option("--store", "store_dir", type=click.Path(file_okay=False), help="Directory of the embedded store.")
@click.option("--database", metavar="URL", envvar="ENARX_DRAWBRIDGE_DATABASE", help="postgresql://… store.")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
def gc(store_dir: str | None, database: str | None, dry_run: bool) -> None:
    """Remove stored objects that no tag names (a deleted pending tag removes its own; this collects what a
    crash between storing an object and committing it left). Safe while servers use the store."""
    from enarx.drawbridge.store import StoreError, open_store

    _check_store_options(store_dir, database)
    if store_dir and os.path.isdir(store_dir) and not os.path.isfile(os.path.join(store_dir, "drawbridge.sqlite")):
        raise click.ClickException(f"{store_dir} is not a Drawbridge store (it holds no drawbridge.sqlite): name the "
                                   "directory given to 'enarx drawbridge serve --store'")
    try:
        store = open_store(store_dir, database)
        try:
            count, size = store.collect_garbage(dry_run=dry_run)
        finally:
            store.close()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'would remove' if dry_run else 'removed'} {count} unreferenced object{'s' * (count != 1)} "
               f"({size} bytes)")
