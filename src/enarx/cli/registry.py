"""``enarx user|repo|package …``: the Drawbridge registry client commands (Enarx-compatible names).

``HOST/alice``, ``HOST/alice/hello`` and ``HOST/alice/hello:0.1.0`` name a user, a repository and a tag
on the registry at ``HOST`` (``127.0.0.1:8443``); every request goes over verifying TLS (``--ca-bundle``
or ``ENARX_CA_BUNDLE`` adds a private CA).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

import click


def registry_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every registry command takes."""
    options = [
        click.option("--ca-bundle", metavar="PEM", help="Extra CA roots to trust (or ENARX_CA_BUNDLE)."),
        click.option("--insecure-auth-token", envvar="ENARX_INSECURE_AUTH_TOKEN", metavar="TOKEN",
                     help="Use this bearer token instead of the stored one (or ENARX_INSECURE_AUTH_TOKEN)."),
        click.option("--credential-helper", envvar="ENARX_CREDENTIAL_HELPER", metavar="EXE",
                     help="Program that stores tokens (`EXE show ID`)."),
        click.option("--oidc-issuer", envvar="ENARX_OIDC_ISSUER", metavar="URL",
                     help="The OIDC issuer you logged in with (picks the stored token)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class Session:
    """What a registry command needs: the CA bundle, the token (if any) and a client per host."""

    def __init__(self, ca_bundle: str | None, insecure_auth_token: str | None, credential_helper: str | None,
                 oidc_issuer: str | None):
        from enarx import cabundle

        self.ca_bundle = cabundle.resolve(ca_bundle)
        self.insecure_token = insecure_auth_token
        self.helper = credential_helper
        self.issuer = oidc_issuer

    def token(self, host: str, *, required: bool) -> str | None:
        from enarx.drawbridge import credentials
        from enarx.errors import EnarxError

        token = credentials.load(host, issuer=self.issuer, insecure_token=self.insecure_token, helper=self.helper)
        if token is None and required:
            raise EnarxError(f"no token for {host}: log in with `enarx user login --oidc-issuer URL` or set "
                             "ENARX_INSECURE_AUTH_TOKEN")
        return token

    def client(self, host: str, *, token_required: bool = False) -> Any:
        from enarx.cabundle import client_context
        from enarx.drawbridge.client import RegistryClient

        return RegistryClient(host, client_context(self.ca_bundle), self.token(host, required=token_required))


def with_session(func: Callable[..., Any]) -> Callable[..., Any]:
    @registry_options
    @functools.wraps(func)
    def wrapper(ca_bundle: str | None, insecure_auth_token: str | None, credential_helper: str | None,
                oidc_issuer: str | None, **kw: Any) -> Any:
        return func(Session(ca_bundle, insecure_auth_token, credential_helper, oidc_issuer), **kw)

    return wrapper


def _slug(text: str, *, repo: bool = False, tag: bool = False) -> Any:
    from enarx.drawbridge.names import SlugError, parse_slug

    try:
        return parse_slug(text, repo=repo, tag=tag)
    except SlugError as exc:
        raise click.BadParameter(str(exc)) from None


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


# -- user ------------------------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Registry users: log in, register, show."""


@user.command()
@click.option("--oidc-issuer", envvar="ENARX_OIDC_ISSUER", required=True, metavar="URL",
              help="The OIDC issuer (its /.well-known/openid-configuration is read).")
@click.option("--oidc-client-id", envvar="ENARX_OIDC_CLIENT_ID", default="enarx", show_default=True,
              help="OAuth client id registered at the issuer.")
@click.option("--oidc-flow", type=click.Choice(["device", "client"]), default="device", show_default=True,
              help="device: confirm a code in a browser; client: client credentials (ENARX_OIDC_CLIENT_SECRET).")
@click.option("--oidc-audience", metavar="AUD", help="Audience to ask for (default https://STORE-HOST/).")
@click.option("--store-host", required=True, metavar="HOST", help="The registry the token is for (HOST[:PORT]).")
@click.option("--credential-helper", envvar="ENARX_CREDENTIAL_HELPER", metavar="EXE",
              help="Store the token with this program (`EXE insert ID`) instead of the keyring or file.")
@click.option("--ca-bundle", metavar="PEM", help="Extra CA roots to trust (or ENARX_CA_BUNDLE).")
def login(oidc_issuer: str, oidc_client_id: str, oidc_flow: str, oidc_audience: str | None, store_host: str,
          credential_helper: str | None, ca_bundle: str | None) -> None:
    """Log in to an OIDC issuer and store the token for the registry at STORE-HOST."""
    from enarx import cabundle
    from enarx.drawbridge import credentials
    from enarx.drawbridge import login as oidc
    from enarx.errors import EnarxError

    bundle = cabundle.resolve(ca_bundle)
    audience = oidc_audience or f"https://{store_host}/"
    doc = oidc.discover(oidc_issuer, bundle)
    if oidc_flow == "client":
        secret = os.environ.get("ENARX_OIDC_CLIENT_SECRET")
        if not secret:
            raise EnarxError("the client-credentials flow needs ENARX_OIDC_CLIENT_SECRET")
        token = oidc.client_credentials(doc, oidc_client_id, secret, audience, bundle)
    else:
        token = oidc.device_flow(doc, oidc_client_id, audience, bundle)
    where = credentials.store(credentials.credential_id(oidc_issuer, store_host), token, credential_helper)
    click.echo(f"Logged in as {oidc.unverified_subject(token)}; token stored in {where}", err=True)


@user.command("register")
@with_session
@click.argument("spec")
def user_register(session: Session, spec: str) -> None:
    """Register USER (HOST/USER) for the subject of your token."""
    from enarx.drawbridge import login as oidc
    from enarx.errors import EnarxError

    slug = _slug(spec)
    with session.client(slug.host, token_required=True) as client:
        token = session.token(slug.host, required=True)
        assert token is not None
        subject = oidc.unverified_subject(token)
        if session.issuer:  # the issuer's userinfo endpoint confirms whom the token stands for
            confirmed = oidc.userinfo_subject(oidc.discover(session.issuer, session.ca_bundle), token,
                                              session.ca_bundle)
            if confirmed is not None and confirmed != subject:
                raise EnarxError(f"the issuer says the token is {confirmed!r}, not {subject!r}")
        client.register_user(slug, subject)
    click.echo(f"Registered user {slug.user} for {subject}", err=True)


@user.command("info")
@with_session
@click.argument("spec")
def user_info(session: Session, spec: str) -> None:
    """Show USER's record (HOST/USER)."""
    slug = _slug(spec)
    with session.client(slug.host, token_required=True) as client:
        _print_json(client.user_info(slug))


# -- repo ------------------------------------------------------------------------------------------


@click.group()
def repo() -> None:
    """Registry repositories: register, show."""


@repo.command("register")
@with_session
@click.option("--private", is_flag=True, help="Only you (and keeps your --keep-policy admits) may read it.")
@click.option("--keep-policy", type=click.Path(exists=True, dir_okay=False), metavar="TOML",
              help="Attestation policy a keep's certificate claims must satisfy to read this private "
                   "repository (plus `allow_insecure = true` to admit simulated/KVM keeps).")
@click.argument("spec")
def repo_register(session: Session, private: bool, keep_policy: str | None, spec: str) -> None:
    """Register the repository HOST/USER/REPO."""
    slug = _slug(spec, repo=True)
    config: dict[str, Any] = {"public": not private}
    if keep_policy:
        if not private:
            raise click.UsageError("--keep-policy applies to --private repositories (public ones anyone reads)")
        config["keeps"] = _keep_rule(keep_policy)
    with session.client(slug.host, token_required=True) as client:
        client.register_repo(slug, config)
    click.echo(f"Registered {'private' if private else 'public'} repository {slug}", err=True)


def _keep_rule(path: str) -> dict[str, Any]:
    import datetime
    import tomllib

    from enarx.attestation.policy import Policy
    from enarx.errors import ConfigError

    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the keep policy: {exc}") from None
    allow_insecure = doc.pop("allow_insecure", False)
    if not isinstance(allow_insecure, bool):
        raise ConfigError(f"{path}: allow_insecure must be true or false")
    try:
        Policy.from_dict(doc, path)
    except Exception as exc:  # noqa: BLE001 - PolicyError: reported as one line
        raise ConfigError(str(exc)) from None

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, (datetime.date, datetime.datetime)):
            return value.isoformat()[:10]
        return value

    return {"policy": plain(doc), "allow_insecure": allow_insecure}


@repo.command("info")
@with_session
@click.argument("spec")
def repo_info(session: Session, spec: str) -> None:
    """Show HOST/USER/REPO's config and tags."""
    slug = _slug(spec, repo=True)
    with session.client(slug.host, token_required=True) as client:
        _print_json(client.repo_info(slug))


# -- package ---------------------------------------------------------------------------------------


@click.group()
def package() -> None:
    """Packages: publish to and show from a registry; encrypted packages (keygen, encrypt, inspect)."""


def _add_encrypted_package_commands() -> None:
    """One `enarx package` group: the registry commands here, the encrypted-package ones beside them."""
    from enarx.cli import package_crypto

    for command in package_crypto.COMMANDS:
        package.add_command(command)


_add_encrypted_package_commands()


@package.command()
@with_session
@click.option("--encrypt", is_flag=True,
              help="Publish PATH encrypted: only ciphertext goes to the registry; its key goes to the key broker "
                   "(--kbs), released only to keeps that satisfy --policy.")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), metavar="TOML",
              help="With --encrypt: the keep policy (attestation policy language) a keep must satisfy for the key.")
@click.option("--kbs", metavar="URL", envvar="ENARX_KBS",
              help="With --encrypt: the key broker to register the content key with (your registry token).")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False), metavar="PEM",
              help="With --encrypt: your publisher signing key (`enarx package keygen`); deployers pin its .pub.")
@click.option("--kbs-resource", metavar="REPOSITORY/TYPE/TAG",
              help="With --encrypt: where the broker keeps the key (default USER/REPO/TAG; the broker admits a "
                   "publisher to one repository name, from its token).")
@click.option("--key-out", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --encrypt: also save the content key (a new 0600 file), e.g. to push the package later.")
@click.argument("spec")
@click.argument("path", type=click.Path())
def publish(session: Session, encrypt: bool, policy_file: str | None, kbs: str | None, sign_key: str | None,
            kbs_resource: str | None, key_out: str | None, spec: str, path: str) -> None:
    """Publish PATH (a .wasm file or a package directory) as HOST/USER/REPO:TAG. Run again to resume an
    interrupted publish (also with --encrypt: the package encrypted the first time is reused)."""
    from enarx.drawbridge.tree import build_tree

    slug = _slug(spec, repo=True, tag=True)
    encrypted = None
    if encrypt:
        encrypted = _encrypted(session, slug, path, policy_file, kbs, sign_key, kbs_resource, key_out)
        path = str(encrypted.package)
    elif any((policy_file, kbs, sign_key, kbs_resource, key_out)):
        raise click.UsageError("--policy, --kbs, --sign-key, --kbs-resource and --key-out go with --encrypt")
    nodes = build_tree(path)
    with session.client(slug.host, token_required=True) as client:
        outcome = client.publish(slug, nodes)
    total = sum(n.length for n in nodes if n.file is not None)
    files = sum(1 for n in nodes if n.file is not None)
    words = {"published": "Published", "resumed": "Resumed and published", "unchanged": "Already published"}
    what = " encrypted (ciphertext only)" if encrypted else ""
    click.echo(f"{words[outcome]} {slug}{what} ({files} file{'s' if files != 1 else ''}, {total} bytes; tree "
               f"sha-256 {nodes[0].entry.digests['sha-256'].hex()})", err=True)
    if encrypted is not None:
        click.echo(f"Its key is registered with {kbs} as {encrypted.resource} (manifest sha-256 {encrypted.digest}); "
                   f"deploy it with --kbs {kbs} --publisher-key {sign_key}.pub", err=True)
        encrypted.done()


def _encrypted(session: Session, slug: Any, path: str, policy_file: str | None, kbs: str | None,
               sign_key: str | None, resource: str | None, key_out: str | None) -> Any:
    """Encrypt PATH (or reuse what an interrupted run encrypted) and register its key with the broker."""
    from pathlib import Path

    from enarx.packaging.publish import prepare

    missing = [name for name, value in (("--policy", policy_file), ("--kbs", kbs), ("--sign-key", sign_key))
               if not value]
    if missing:
        raise click.UsageError(f"--encrypt needs {', '.join(missing)}")
    assert policy_file is not None and kbs is not None and sign_key is not None
    token = session.token(slug.host, required=True)
    assert token is not None
    return prepare(slug, Path(path), Path(policy_file).read_text(), kbs, Path(sign_key), token,
                   resource=resource, ca_bundle=session.ca_bundle, key_out=key_out)


@package.command()
@with_session
@click.argument("spec")
def info(session: Session, spec: str) -> None:
    """Show the tag entry of HOST/USER/REPO:TAG (its tree's digests, length and type)."""
    slug = _slug(spec, repo=True, tag=True)
    with session.client(slug.host) as client:
        body, _root = client.tag_entry(slug)
    _print_json(json.loads(body))


@package.command()
@with_session
@click.argument("spec")
def delete(session: Session, spec: str) -> None:
    """Delete HOST/USER/REPO:TAG while it is still pending (a publish that never completed), so that it can be
    published again with other content. A completely published tag cannot be deleted."""
    slug = _slug(spec, repo=True, tag=True)
    with session.client(slug.host, token_required=True) as client:
        client.delete_pending_tag(slug)
    click.echo(f"Deleted the pending tag {slug}", err=True)
