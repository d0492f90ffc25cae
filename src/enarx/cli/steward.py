"""``enarx steward``: the attestation CA server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from enarx.cli.anchorspec import ANCHOR_SPEC


@click.group()
def steward() -> None:
    """Steward: issue certificates to keeps whose attestation evidence verifies."""


@steward.command()
@click.option("--addr", default="::", show_default=True, help="Address to listen on.")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535),
              help="Plain HTTP port (0: any free port).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="CA private key (PEM).")
@click.option("--crt", type=click.Path(exists=True, dir_okay=False), help="CA certificate (PEM).")
@click.option("--generate-ca", "generate_ca", metavar="NAME", help="Generate a P-256 CA CN=NAME at start-up.")
@click.option("--write-ca", type=click.Path(file_okay=False),
              help="With --generate-ca: save ca.key (0600) and ca.crt in this directory; refuses to replace them.")
@click.option("--force", is_flag=True, help="With --write-ca: replace existing CA files (atomically).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="Attestation policy (TOML; every key and default in docs/policy.md); default: the fail-closed "
                   "default policy.")
@click.option("--collateral", "collateral", multiple=True, metavar="DIR",
              help="Collateral the Steward holds (a collateral cache directory, a cache bundle .tar.gz, or files): "
                   "CRLs, Intel TCB info and QE identity, intermediates. Fills in what keeps do not send; "
                   "collateral older than this is refused. Repeatable.")
@click.option("--san", multiple=True, help="DNS SubjectAltName put in every issued certificate (repeatable).")
@click.option("--validity", default=28.0, show_default=True, type=float,
              help="Days an issued certificate is valid (never beyond the evidence collateral's validity).")
@click.option("--verify-at", help="Evaluate evidence as of this time (ISO 8601), e.g. to replay recordings.")
@click.option("--tls-crt", type=click.Path(exists=True, dir_okay=False), help="Server TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Server TLS key (PEM).")
@click.option("--tls-port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="TLS listener port.")
@click.option("--no-plain", is_flag=True, help="With --tls-crt: serve only the TLS listener.")
@click.option("--insecure-accept-kvm", is_flag=True, help="INSECURE: certify KVM/nil keeps (no hardware).")
@click.option("--insecure-trust-anchor", multiple=True, type=ANCHOR_SPEC, metavar="[FORMATS=]FILE",
              help="INSECURE: extra root(s) (and intermediates) e.g. the simulator's; repeatable.")
@click.option("--require-challenge", is_flag=True,
              help="Refuse evidence that does not bind a fresh nonce from GET /challenge (plain Enarx keeps "
                   "send none).")
@click.option("--challenge-ttl", type=click.IntRange(1, 3600), default=120, show_default=True,
              help="Seconds a GET /challenge nonce stays valid.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes sharing the listeners (verification is CPU-bound: one per core).")
def serve(addr: str, port: int, key: str | None, crt: str | None, generate_ca: str | None, write_ca: str | None,
          force: bool,
          policy_file: str | None, san: tuple[str, ...], validity: float, verify_at: str | None,
          tls_crt: str | None, tls_key: str | None, tls_port: int, no_plain: bool, insecure_accept_kvm: bool,
          insecure_trust_anchor: tuple[str, ...], require_challenge: bool, challenge_ttl: int,
          workers: int, collateral: tuple[str, ...] = ()) -> None:
    """Serve the Steward protocol (POST / with a CSR, GET /ca, GET /challenge, GET /metrics)."""
    from enarx.attestation.freshness import ChallengeIssuer
    from enarx.attestation.model import AttestationError
    from enarx.attestation.policy import Policy
    from enarx.attestation.store import CollateralStore
    from enarx.attestation.verifier import parse_time
    from enarx.steward.issuer import CertificateAuthority
    from enarx.steward.server import Listener, configure_logging, open_listeners
    from enarx.steward.server import serve as run
    from enarx.steward.service import Steward, StewardConfig, load_insecure_anchors

    if bool(key) != bool(crt):
        raise click.UsageError("--key and --crt go together")
    if bool(key) == bool(generate_ca):
        raise click.UsageError("give either --key/--crt or --generate-ca NAME")
    if write_ca and not generate_ca:
        raise click.UsageError("--write-ca saves a generated CA: it needs --generate-ca NAME")
    if force and not write_ca:
        raise click.UsageError("--force replaces the files of --write-ca DIR: give --write-ca")
    if bool(tls_crt) != bool(tls_key):
        raise click.UsageError("--tls-crt and --tls-key go together")
    if no_plain and not tls_crt:
        raise click.UsageError("--no-plain needs --tls-crt/--tls-key")
    if validity <= 0:
        raise click.UsageError("--validity must be positive")
    try:
        at = parse_time(verify_at) if verify_at else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--verify-at") from None
    listeners = [] if no_plain else [Listener(addr, port)]
    if tls_crt:
        listeners.append(Listener(addr, tls_port, tls_crt, tls_key))
    try:
        sockets = open_listeners(listeners)  # first: a busy port must not leave CA files behind
        if generate_ca:
            ca = CertificateAuthority.generate(generate_ca, not_before=at)
            if write_ca:
                ca.write(write_ca, force=force)
        else:
            assert key and crt
            ca = CertificateAuthority.load(key, crt)
        policy = Policy.from_file(policy_file) if policy_file else Policy.default()
        anchors, intermediates = load_insecure_anchors(list(insecure_trust_anchor))
        store = CollateralStore.load(collateral)
        for warning in store.warnings:
            click.echo(f"warning: --collateral: {warning}", err=True)
    except (AttestationError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging()
    config = StewardConfig(ca=ca, policy=policy, policy_name=Path(policy_file).stem if policy_file else "default",
                           validity=timedelta(days=validity), sans=list(san), verify_at=at,
                           accept_kvm=insecure_accept_kvm, insecure_anchors=anchors,
                           insecure_intermediates=intermediates, require_challenge=require_challenge,
                           challenges=ChallengeIssuer.generate(timedelta(seconds=challenge_ttl)),
                           collateral=store)
    if insecure_accept_kvm or anchors:
        click.echo("warning: insecure options given: certificates may be issued without hardware attestation",
                   err=True)
    run(Steward(config), listeners, workers=workers, sockets=sockets)
