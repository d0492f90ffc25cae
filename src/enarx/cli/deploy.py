"""``enarx deploy``: run a published package in a keep that fetches it itself (after attesting)."""

from __future__ import annotations

import sys

import click

from enarx.cli.registry import Session, registry_options
from enarx.cli.runargs import OPTIONS

_NOT_FOR_DEPLOY = ("--await-push",)  # deploy fetches its package; a pushed keep is `enarx run`'s
_DEPLOY_HELP = {"--publisher-key": "With --kbs: the publisher's public key an encrypted package must be signed "
                                   "with (the keep verifies the manifest against it)."}


def _run_options() -> list[click.Option]:
    """The options of ``enarx run`` (one table: :data:`enarx.cli.runargs.OPTIONS`), each under its own name."""
    return [click.Option([o.name, o.dest], metavar=o.metavar or None, help=_DEPLOY_HELP.get(o.name, o.help),
                         is_flag=o.kind == "flag", multiple=o.kind == "multi", envvar=o.envvar,
                         type=click.Choice(o.choices) if o.choices else None)
            for o in OPTIONS if o.name not in _NOT_FOR_DEPLOY]


def _without_ca_bundle(func):
    """The registry options minus --ca-bundle, which `run`'s options already bring (the same bundle)."""
    func = registry_options(func)
    func.__click_params__ = [p for p in func.__click_params__ if p.name != "ca_bundle"]
    return func


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--steward", metavar="URL", envvar="ENARX_STEWARD",
              help="Attest to this Steward before fetching (for a .wasm URL also `steward` in --wasmcfgfile); the "
                   "fetch then presents the Steward's certificate, as private packages require.")
@click.option("--kbs", metavar="URL", envvar="ENARX_KBS",
              help="The key broker holding an encrypted package's key: the keep attests to it and decrypts the "
                   "package itself (with --publisher-key).")
@_without_ca_bundle
@click.argument("package")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def deploy(ctx: click.Context, steward: str | None, kbs: str | None, insecure_auth_token: str | None,
           credential_helper: str | None, oidc_issuer: str | None, package: str, args: tuple[str, ...],
           **run_options: object) -> None:
    """Run PACKAGE in a keep: HOST/USER/REPO:TAG from a Drawbridge registry, or a file:// or https:// URL.

    The host resolves the tag to its digests only and binds them into the keep's evidence; the keep fetches
    and checks the package itself (with --steward: after attesting). An encrypted package (published with
    `enarx package publish --encrypt`) needs --publisher-key and --kbs: the keep verifies the publisher's
    signature, attests to the key broker for the key and decrypts inside the keep. ARGS go to the workload.
    --ca-bundle (or ENARX_CA_BUNDLE) is trusted for the registry, the Steward, the key broker and the keep's
    fetch.
    """
    from urllib.parse import urlsplit

    from enarx.api import KeepOptions
    from enarx.api import deploy as deploy_remote
    from enarx.cabundle import client_context
    from enarx.cli.runargs import RunCommandLine, _convert
    from enarx.cli.runner import execute, report_listening, warn
    from enarx.drawbridge.deploy import resolve

    if package.startswith("-"):
        raise click.UsageError(f"No such option: {package}", ctx=ctx)
    raw = {o.dest: list(run_options[o.dest]) if o.kind == "multi" else run_options.get(o.dest) or None  # type: ignore[call-overload]
           for o in OPTIONS}
    publisher_key = raw["publisher_key"]
    options = _convert(raw, {o.dest: o.name for o in OPTIONS})
    log_filter = (ctx.find_root().obj or {}).get("log_filter")
    session = Session(options["ca_bundle"], insecure_auth_token, credential_helper, oidc_issuer)
    host = urlsplit(package).netloc if "://" in package else package.split("/", 1)[0]
    token = session.token(host, required=False) if not package.startswith("file:") else None
    target = resolve(package, client_context(session.ca_bundle), token)
    if isinstance(target, str):  # file://: exactly `enarx run PATH`
        if steward or kbs or publisher_key:
            raise click.UsageError("--steward, --kbs and --publisher-key apply to registry packages; a local package "
                                   "names its Steward in its Enarx.toml")
        execute(RunCommandLine(target, list(args), options), log_filter=log_filter)
        return
    keep = KeepOptions(args=list(args), log_level="debug" if log_filter and "debug" in log_filter.lower() else None,
                       **options)
    if keep.simulate_tee:
        warn(f"attesting with SIMULATED {keep.simulate_tee} evidence: no hardware protects this keep")
    result = deploy_remote(target.url, target.root, keep, steward=steward, public=target.public, kbs_url=kbs,
                           publisher_key=publisher_key, on_started=report_listening)
    if result.error:
        sys.stderr.write(f"Error: {result.error}\n")
        sys.stderr.flush()
    sys.exit(result.status)


deploy.params[:0] = _run_options()
