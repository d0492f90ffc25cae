"""Keys of an encrypted package: the content key, its public commitment, and the publisher's signing key.

* The **content key** is 32 random bytes, fresh for every package. It never appears in a log, a manifest
  or an error message; only the key broker and attested keeps hold it.
* The **key id** in the manifest is ``HKDF-SHA256(content key, info="enarx-package/v1 key id" ‖ package
  id)`` — a commitment that lets a keep (or the broker at registration) tell at once that a key is not
  this package's key, without revealing anything about the key.
* The **publisher key** signs the manifest (ES256, ES384 or EdDSA/Ed25519); deployers pin its public key.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey, OKPKey

from enarx.packaging.errors import PackageError

CONTENT_KEY_SIZE = 32
_KEY_ID_INFO = b"enarx-package/v1 key id\x00"
ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "Ed25519": "EdDSA"}

PublisherKey = ECKey | OKPKey


def new_content_key() -> bytes:
    return os.urandom(CONTENT_KEY_SIZE)


def key_id(content_key: bytes, package_id: bytes) -> str:
    """The public commitment to ``content_key`` for one package (hex)."""
    if len(content_key) != CONTENT_KEY_SIZE:
        raise PackageError(f"a content key is {CONTENT_KEY_SIZE} bytes, not {len(content_key)}", "wrong-key")
    return HKDF(hashes.SHA256(), 32, None, _KEY_ID_INFO + package_id).derive(content_key).hex()


def check_key(content_key: bytes, package_id: bytes, expected_key_id: str) -> None:
    """Raise ``wrong-key`` unless ``content_key`` is the key the manifest commits to (constant time)."""
    if not hmac.compare_digest(key_id(content_key, package_id), expected_key_id):
        raise PackageError("this content key does not open this package (its key id differs from the "
                           "manifest's): use the key registered for this package", "wrong-key")


def _as_jwk(key: Any) -> PublisherKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise PackageError(f"publisher keys are P-256, P-384 or Ed25519, not {key.curve.name}", "format")
        return ECKey.import_key(key)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return OKPKey.import_key(key)
    raise PackageError("publisher keys are P-256, P-384 or Ed25519 (EC or Ed25519 PEM)", "format")


def load_signing_key(path: str | os.PathLike[str]) -> PublisherKey:
    """A publisher's private key from a PEM file (``--sign-key``)."""
    try:
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except OSError as exc:
        raise PackageError(f"cannot read signing key {os.fspath(path)!r}: {exc.strerror}", "io") from None
    except (ValueError, TypeError):
        raise PackageError(f"{os.fspath(path)!r} is not an unencrypted PEM private key", "format") from None
    return _as_jwk(key)


def load_public_key(path: str | os.PathLike[str]) -> PublisherKey:
    """A publisher's pinned public key from a PEM file (a private key file is accepted too)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read publisher key {os.fspath(path)!r}: {exc.strerror}", "io") from None
    try:
        key: Any = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise PackageError(f"{os.fspath(path)!r} is not a PEM public key", "format") from None
    return _as_jwk(key)


def public_jwk(key: PublisherKey) -> PublisherKey:
    return type(key).import_key(key.as_dict(private=False))


def algorithm(key: PublisherKey) -> str:
    return ALGORITHMS[key.as_dict()["crv"]]


def thumbprint(key: PublisherKey) -> str:
    """RFC 7638 JWK thumbprint of the public key: the publisher's short, stable name."""
    return public_jwk(key).thumbprint()


def generate_signing_key(path: str | os.PathLike[str]) -> Path:
    """Write a new P-256 publisher key (PKCS#8 PEM, 0600) to ``path`` and its public key to ``path.pub``."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    pub = path.with_name(path.name + ".pub")
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


def write_content_key(path: str | os.PathLike[str], content_key: bytes) -> None:
    """Save a content key for later registration or push: base64url text, a new 0600 file (never overwrites)."""
    import base64

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise PackageError(f"cannot create key file {os.fspath(path)!r}: {exc.strerror}", "io") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(content_key).rstrip(b"=").decode() + "\n")


def read_content_key(path: str | os.PathLike[str]) -> bytes:
    import base64
    import binascii

    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read key file {os.fspath(path)!r}: {exc}", "io") from None
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != CONTENT_KEY_SIZE:
        raise PackageError(f"{os.fspath(path)!r} does not hold a {CONTENT_KEY_SIZE}-byte content key", "format")
    return key
