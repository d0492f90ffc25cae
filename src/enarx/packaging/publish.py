"""``enarx package publish --encrypt``, before the upload: encrypt the package, register its key.

The package is encrypted on the publisher's machine into a private working directory (0700, in the user's
cache: ``publish/<digest of the tag>/``) holding the encrypted package and its content key (0600) — never
plaintext. The key is registered with the key broker under the resource path the signed manifest names;
then the caller uploads the encrypted package to the registry like any package. An interrupted publish is
resumed by running it again: the working directory is reused (same ciphertext, same key; the broker accepts
the identical registration again), unless the policy or resource changed, in which case the package is
encrypted again. The working directory is removed once the upload has succeeded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enarx.packaging import keys, manifest, seal, unseal
from enarx.packaging.errors import PackageError

PACKAGE = "package"
KEY = "content.key"


@dataclass
class Prepared:
    directory: Path  # the working directory (removed by done())
    resource: str
    digest: str  # the manifest digest: the package's identity at the broker and in keeps

    @property
    def package(self) -> Path:
        return self.directory / PACKAGE

    def done(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def working_directory(slug: Any) -> Path:
    from enarx.runtime.cachedir import default_cache_dir

    name = hashlib.sha256(f"{slug.host}/{slug.user}/{slug.repo}:{slug.tag}".encode()).hexdigest()[:32]
    return default_cache_dir() / "publish" / name


def prepare(slug: Any, source: Path, policy: str, kbs_url: str, sign_key: Path, bearer: str, *,
            resource: str | None = None, ca_bundle: str | None = None, key_out: str | None = None) -> Prepared:
    """The encrypted package for ``slug`` (made now, or reused) with its key registered at ``kbs_url``."""
    from enarx import cabundle
    from enarx.kbs.client import KbsClient

    cabundle.check_service_url(kbs_url, "key broker")
    resource = resource or f"{slug.user}/{slug.repo}/{slug.tag}"
    signer = keys.load_signing_key(sign_key)
    directory = working_directory(slug)
    doc, content_key = _reuse(directory, signer, policy, resource)
    if doc is None:
        doc, content_key = _encrypt(directory, source, signer, policy, resource)
    if key_out is not None:
        keys.write_content_key(key_out, content_key)
    token = (directory / PACKAGE / unseal.MANIFEST_NAME).read_text().strip()
    KbsClient(kbs_url, ca_bundle=ca_bundle).register(resource, token, content_key, bearer)
    return Prepared(directory, resource, doc.digest)


def _reuse(directory: Path, signer: keys.PublisherKey, policy: str, resource: str) -> tuple[Any, bytes]:
    """What an interrupted run prepared, if it is still what is asked for; else (None, b"")."""
    try:
        doc = unseal.read_manifest(unseal.DirectorySource(directory / PACKAGE), keys.public_jwk(signer))
        content_key = keys.read_content_key(directory / KEY)
        keys.check_key(content_key, doc.package_id_bytes, doc.key_id)
    except PackageError:
        return None, b""
    if doc.policy != policy or doc.resource != resource:
        return None, b""
    return doc, content_key


def _encrypt(directory: Path, source: Path, signer: keys.PublisherKey, policy: str,
             resource: str) -> tuple[manifest.Manifest, bytes]:
    """Encrypt into a fresh temporary directory, then move it into place whole (a crash leaves no half)."""
    if not manifest.RESOURCE.fullmatch(resource):
        raise PackageError(f"key broker resource {resource!r} is not REPOSITORY/TYPE/TAG of [A-Za-z0-9._-] (give "
                           "--kbs-resource)", "format")
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=directory.parent))  # 0700
    try:
        sealed = seal.seal_package(source, staging / PACKAGE, sign_key=signer, policy=policy, resource=resource)
        keys.write_content_key(staging / KEY, sealed.content_key)
        if directory.exists():
            shutil.rmtree(directory)
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sealed.manifest, sealed.content_key
