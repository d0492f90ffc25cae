"""``enarx kbs serve``: the key broker (Trustee's KBS protocol) for encrypted packages."""

from __future__ import annotations

from pathlib import Path

import click

from enarx.cli.anchorspec import ANCHOR_SPEC


@click.group()
def kbs() -> None:
    """Key broker: release package keys to keeps whose attestation satisfies policy."""


@kbs.command()
@click.option("--addr", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free port, announced).")
@click.option("--tls-crt", type=click.Path(exists=True, dir_okay=False), help="Server TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Server TLS key (PEM).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="The broker's own attestation policy (TOML); default: the safe default.")
@click.option("--collateral", "collateral_dirs", multiple=True, type=click.Path(exists=True),
              help="Collateral the broker holds (CRLs, TCB info, QE identity, VCEKs); repeatable.")
@click.option("--store", type=click.Path(file_okay=False),
              help="Directory for registered keys (0700); default: memory only, lost at exit.")
@click.option("--oidc-issuer", help="Publishers' OIDC issuer (https; http only on loopback).")
@click.option("--oidc-audience", help="The audience publishers' tokens must carry.")
@click.option("--namespace-claim", default="sub", show_default=True,
              help="The token claim naming the one repository a publisher may register under.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False),
              help="Extra CA certificates to trust for the OIDC issuer (or ENARX_CA_BUNDLE).")
@click.option("--verify-at", help="Evaluate evidence as of this time (ISO 8601).")
@click.option("--insecure-trust-anchor", multiple=True, type=ANCHOR_SPEC, metavar="[FORMATS=]FILE",
              help="INSECURE: extra root(s) (and intermediates), e.g. the simulator's; repeatable.")
def serve(addr: str, port: int, tls_crt: str | None, tls_key: str | None, policy_file: str | None,
          collateral_dirs: tuple[str, ...], store: str | None, oidc_issuer: str | None, oidc_audience: str | None,
          namespace_claim: str, ca_bundle: str | None, verify_at: str | None, insecure_trust_anchor: tuple[str, ...]) -> None:
    """Serve /kbs/v0/auth, /kbs/v0/attest, /kbs/v0/resource/... and /.well-known/jwks.json."""
    from enarx import cabundle
    from enarx.attestation import roots
    from enarx.attestation.collateral import load_collateral
    from enarx.attestation.model import AttestationError
    from enarx.attestation.verifier import parse_time
    from enarx.kbs import publisher
    from enarx.kbs.server import configure_logging
    from enarx.kbs.server import serve as run
    from enarx.kbs.service import Broker, BrokerConfig
    from enarx.kbs.store import ResourceStore
    from enarx.packaging import trust
    from enarx.steward.server import Listener
    from enarx.steward.service import builtin_intermediates, load_insecure_anchors

    if bool(tls_crt) != bool(tls_key):
        raise click.UsageError("--tls-crt and --tls-key go together")
    if not tls_crt and not cabundle.is_loopback(addr):
        raise click.UsageError(f"plain HTTP only on loopback: give --tls-crt/--tls-key to listen on {addr}")
    try:
        at = parse_time(verify_at) if verify_at else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--verify-at") from None
    try:
        policy = trust.parse_policy(Path(policy_file).read_text(), policy_file) if policy_file else \
            trust.default_policy()
        anchors, intermediates = load_insecure_anchors(list(insecure_trust_anchor))
        from enarx.attestation.collateral import from_ders

        pool = from_ders([*builtin_intermediates(), *intermediates], source="kbs")
        if collateral_dirs:
            pool = pool.merge(load_collateral(collateral_dirs))
    except (AttestationError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging()
    config = BrokerConfig(policy=policy, policy_name=Path(policy_file).stem if policy_file else "default",
                          anchors=roots.builtin_anchors(anchors), collateral=pool, store=ResourceStore(store),
                          publishers=publisher.make(oidc_issuer, oidc_audience, cabundle.resolve(ca_bundle),
                                                    namespace_claim),
                          verify_at=at)
    if anchors:
        click.echo("warning: insecure trust anchors given: keys may be released without hardware attestation",
                   err=True)
    if store is None:
        click.echo("kbs: no --store: registered keys are kept in memory and lost at exit", err=True)
    run(Broker(config), [Listener(addr, port, tls_crt, tls_key)])
