"""``enarx package keygen|encrypt|inspect``: encrypted packages on the publisher's machine."""

from __future__ import annotations

import json

import click


@click.group("package")
def package() -> None:
    """Encrypted packages: sign, encrypt and inspect (see docs/package-format.md)."""


@package.command()
@click.argument("path", type=click.Path(dir_okay=False))
def keygen(path: str) -> None:
    """Create a publisher signing key (P-256 PEM, 0600) at PATH and its public key at PATH.pub."""
    from enarx.packaging import keys

    pub = keys.generate_signing_key(path) if _new(path) else None
    click.echo(f"Wrote {path} (keep it private) and {pub} (give it to deployers to pin)")


def _new(path: str) -> bool:
    import os

    from enarx.packaging.errors import PackageError

    if os.path.lexists(path):
        raise PackageError(f"{path} already exists; choose another path", "io")
    return True


@package.command()
@click.option("--sign-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The publisher's private key (PEM: P-256, P-384 or Ed25519).")
@click.option("--policy", "policy_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The keep policy (attestation policy TOML) a keep must satisfy to receive the key.")
@click.option("--key-out", required=True, type=click.Path(dir_okay=False),
              help="Where to save the content key (a new 0600 file) for registering or pushing it.")
@click.option("--resource", help="The key broker resource path REPOSITORY/TYPE/TAG the key will be registered at.")
@click.option("--name", default="", help="A label recorded in the manifest (public).")
@click.argument("source", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
def encrypt(sign_key: str, policy_file: str, key_out: str, resource: str | None, name: str, source: str,
            out: str) -> None:
    """Encrypt SOURCE (a .wasm file or package directory) into the new directory OUT."""
    from pathlib import Path

    from enarx.packaging import keys, seal

    _new(key_out)
    sealed = seal.seal_package(source, out, sign_key=keys.load_signing_key(sign_key),
                               policy=Path(policy_file).read_text(), resource=resource, name=name)
    keys.write_content_key(key_out, sealed.content_key)
    m = sealed.manifest
    click.echo(f"Encrypted {len(m.blobs)} file(s) into {out}: package {m.package_id}, manifest sha256 "
               f"{m.digest}, publisher {m.signer.get('kid') or keys.thumbprint(keys.load_signing_key(sign_key))}; "
               f"content key saved to {key_out}")


@package.command()
@click.option("--publisher-key", type=click.Path(exists=True, dir_okay=False),
              help="The publisher's public key to verify the manifest against (without it: unverified).")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def inspect(publisher_key: str | None, directory: str) -> None:
    """Show the manifest of an encrypted package (nothing secret: the file list is encrypted)."""
    from enarx.packaging import keys, manifest, unseal

    source = unseal.DirectorySource(directory)
    if publisher_key:
        doc = manifest.verify(source.manifest_token(), keys.load_public_key(publisher_key))
        status = "verified"
    else:
        doc = manifest.parse_unverified(source.manifest_token())
        status = "UNVERIFIED (no --publisher-key)"
    out = {"signature": status, "signer": doc.signer or None, "manifest_sha256": doc.digest, **doc.to_json()}
    click.echo(json.dumps(out, indent=2))
