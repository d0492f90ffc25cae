"""``enarx push``: send an encrypted package straight to an attested keep through the host that runs it."""

from __future__ import annotations

import click

from enarx.cli.anchorspec import ANCHOR_SPEC


@click.command()
@click.option("--to", "target", required=True, metavar="ADDR:PORT", help="Where the host relays to the waiting keep.")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="Your attestation policy for the keep (TOML); the package's own keep policy applies too.")
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The package's content key file (from `enarx package encrypt --key-out`).")
@click.option("--publisher-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The publisher's public key the manifest must be signed by.")
@click.option("--collateral", "collateral_dirs", multiple=True, type=click.Path(exists=True),
              help="Collateral you hold for verifying the keep's evidence (repeatable).")
@click.option("--insecure-trust-anchor", multiple=True, type=ANCHOR_SPEC, metavar="[FORMATS=]FILE",
              help="INSECURE: extra root(s), e.g. the simulator's; repeatable.")
@click.argument("package", type=click.Path(exists=True, file_okay=False))
def push(target: str, policy_file: str | None, key_file: str, publisher_key: str, collateral_dirs: tuple[str, ...],
         insecure_trust_anchor: tuple[str, ...], package: str) -> None:
    """Verify the keep's evidence yourself, then send PACKAGE sealed to the keep's key (HPKE)."""
    import socket
    from pathlib import Path

    from enarx.attestation import roots
    from enarx.attestation.collateral import from_ders, load_collateral
    from enarx.errors import EnarxError
    from enarx.packaging import keys, trust
    from enarx.packaging import push as protocol
    from enarx.steward.service import builtin_intermediates, load_insecure_anchors

    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("expected ADDR:PORT", param_hint="--to")
    anchors, intermediates = load_insecure_anchors(list(insecure_trust_anchor))
    pool = from_ders([*builtin_intermediates(), *intermediates], source="push")
    if collateral_dirs:
        pool = pool.merge(load_collateral(collateral_dirs))
    policy = trust.parse_policy(Path(policy_file).read_text(), policy_file) if policy_file else trust.default_policy()
    owner = protocol.PushTrust(roots.builtin_anchors(anchors), policy, pool)
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=60)
    except OSError as exc:
        hint = ("; check that a keep waits there (`enarx run --await-push ADDR:PORT` prints where) and the --to "
                "address" if isinstance(exc, ConnectionRefusedError) else "")
        raise EnarxError(f"cannot connect to {target}: {exc.strerror or exc}{hint}") from None
    with conn:
        outcome = protocol.push(protocol.Channel(conn.recv, conn.sendall), package, keys.read_content_key(key_file),
                                keys.load_public_key(publisher_key), owner)
    how = "pinned to your publisher key" if outcome["pinned"] else "not pinned to a publisher; it confirmed opening yours"
    click.echo(f"Pushed {outcome['files']} file(s) to an attested {outcome['tee']} keep ({how})")
