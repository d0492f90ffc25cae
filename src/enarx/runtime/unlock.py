"""Open an encrypted package the keep has fetched (ciphertext only) with a key from the key broker.

The keep verifies the manifest against the publisher key the deployer pinned, attests to the broker with
the manifest's digest in its runtime-data (``enarx-package``), receives the content key as a JWE to a key
it made for this one attestation, decrypts every file in its own memory and installs the package
(:mod:`enarx.runtime.provision`). The broker releases the key only if the keep's evidence passes its policy
and the package's keep policy and names this package; its refusal, with the failed rules, ends the keep.
"""

from __future__ import annotations

from collections.abc import Mapping

from enarx.runtime.launch import Launch, StageFailure

MANIFEST = "manifest.jws"


def is_encrypted(files: Mapping[str, object]) -> bool:
    """A fetched package is encrypted when it is a manifest and ciphertext files (docs/package-format.md)."""
    return MANIFEST in files and all(path == MANIFEST or path.startswith("blobs/") for path in files)


def unlock(launch: Launch, files: Mapping[str, bytes], *, kbs_url: str | None, publisher_pem: str | None,
           origin: str) -> None:
    """Verify, obtain the key, decrypt and install ``files`` (``manifest.jws`` and ``blobs/…``)."""
    from enarx.errors import EnarxError
    from enarx.kbs.client import KbsClient
    from enarx.packaging import keys, manifest, unseal
    from enarx.runtime.attest.kbs import tee_evidence_for
    from enarx.runtime.provision import install
    from enarx.runtime.stages.attest import evidence_source

    if publisher_pem is None:
        raise StageFailure(f"{origin} is encrypted: pin its publisher with --publisher-key")
    if kbs_url is None:
        raise StageFailure(f"{origin} is encrypted: name the key broker that holds its key with --kbs URL")
    try:
        publisher = keys.parse_public_key(publisher_pem.encode(), "the pinned publisher key")
        doc = manifest.verify(files[MANIFEST], publisher)
        if doc.resource is None:
            raise StageFailure(f"{origin} names no key broker resource (it was made for `enarx push`)")
        tee, evidence_for = tee_evidence_for(evidence_source(launch))
        client = KbsClient(kbs_url, ca_bundle_pem=launch.request.ca_bundle_pem)
        client.attest(tee, evidence_for, package=doc.digest)
        key = client.resource(doc.resource)
        blobs = {path: data for path, data in files.items() if path != MANIFEST}
        plaintext = unseal.open_package(unseal.MemorySource(blobs), doc, key)
    except EnarxError as exc:  # the package, the broker's refusal (with its rules), the keep's evidence, TLS
        raise StageFailure(f"{origin}: {exc}") from None
    install(launch, plaintext, f"{origin} (package {doc.package_id})")
