"""``enarx deploy``: run a published package in a keep that fetches it itself (after attesting)."""

from __future__ import annotations

import sys

import click

from enarx.cli.registry import Session, registry_options
from enarx.cli.run import run as run_command


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--steward", metavar="URL", envvar="ENARX_STEWARD",
              help="Attest to this Steward before fetching (or `steward` in --wasmcfgfile); the fetch then "
                   "presents the Steward's certificate, as private packages require.")
@registry_options
@click.argument("package")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def deploy(ctx: click.Context, steward: str | None, ca_bundle: str | None, insecure_auth_token: str | None,
           credential_helper: str | None, oidc_issuer: str | None, package: str, args: tuple[str, ...],
           **run_options: object) -> None:
    """Run PACKAGE in a keep: HOST/USER/REPO:TAG from a Drawbridge registry, or a file:// or https:// URL.

    The host resolves the tag to its digests only and binds them into the keep's evidence; the keep fetches
    and checks the package itself (with --steward: after attesting). ARGS go to the workload.
    """
    from enarx.api import KeepOptions
    from enarx.api import deploy as deploy_remote
    from enarx.cabundle import client_context
    from enarx.cli.runner import _parse_dirs, _parse_env, execute, report_listening
    from enarx.config.parse import parse_size, parse_timeout
    from enarx.drawbridge.deploy import resolve
    from enarx.errors import ConfigError

    if package.startswith("-"):
        raise click.UsageError(f"No such option: {package}", ctx=ctx)
    log_filter = (ctx.obj or {}).get("log_filter")
    session = Session(ca_bundle, insecure_auth_token, credential_helper, oidc_issuer)
    from urllib.parse import urlsplit

    host = urlsplit(package).netloc if "://" in package else package.split("/", 1)[0]
    token = session.token(host, required=False) if not package.startswith("file:") else None
    target = resolve(package, client_context(session.ca_bundle), token)
    opts = dict(run_options)
    if isinstance(target, str):  # file://: exactly `enarx run PATH`
        if steward:
            raise click.UsageError("--steward applies to registry packages; a local package names its Steward in "
                                   "its Enarx.toml")
        execute(module=target, args=list(args), log_filter=log_filter, ca_bundle=session.ca_bundle,
                **opts)  # type: ignore[arg-type]
        return
    memory_limit, timeout = opts["memory_limit"], opts["timeout"]
    try:
        memory = parse_size(str(memory_limit)) if memory_limit is not None else None
    except ValueError as exc:
        raise ConfigError(f"--memory-limit: {exc}") from None
    try:
        seconds = parse_timeout(str(timeout)) if timeout is not None else None
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    options = KeepOptions(args=list(args), env=_parse_env(opts["env"]), dirs=_parse_dirs(opts["dirs"]),  # type: ignore[arg-type]
                          config_path=opts["wasmcfgfile"], backend=opts["backend"], memory_limit=memory,  # type: ignore[arg-type]
                          timeout=seconds, cache=not opts["no_cache"],
                          log_level="debug" if log_filter and "debug" in log_filter.lower() else None,
                          simulate_tee=opts["simulate_tee"], simulator_dir=opts["simulator_pki"])  # type: ignore[arg-type]
    bundle_pem = open(session.ca_bundle).read() if session.ca_bundle else None  # noqa: SIM115
    if opts["simulate_tee"]:
        sys.stderr.write(f"warning: attesting with SIMULATED {opts['simulate_tee']} evidence: no hardware protects "
                         "this keep\n")
    result = deploy_remote(target.url, target.root, options, steward=steward, ca_bundle_pem=bundle_pem,
                           public=target.public, on_started=report_listening)
    if result.error:
        sys.stderr.write(f"Error: {result.error}\n")
        sys.stderr.flush()
    sys.exit(result.status)


# the options of `enarx run` (backend, limits, env, dirs, simulation…), shared rather than repeated
# (`--ca-bundle` comes with the registry options: one bundle for the registry, the Steward and the keep's fetch)
deploy.params[:0] = [p for p in run_command.params if isinstance(p, click.Option) and p.name != "ca_bundle"]
