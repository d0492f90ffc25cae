"""Open an encrypted package the keep has fetched (ciphertext only) with a key from the key broker.

The keep verifies the manifest against the publisher key the deployer pinned, attests to the broker with
the manifest's digest in its runtime-data (``enarx-package``), receives the content key as a JWE to a key
it made for this one attestation, decrypts every file in its own memory and installs the package
(:mod:`enarx.runtime.provision`). The broker releases the key only if the keep's evidence passes its policy
and the package's keep policy and names this package; its refusal, with the failed rules, ends the keep.

The manifest is small and comes first: the fetch hands it (checked against the tree the host bound into the
launch) to :class:`EarlyRelease` as soon as it is in, which verifies it and obtains the key *while* the
ciphertext downloads; the key is used only for the very manifest it was released for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from enarx.runtime.launch import Launch, StageFailure

MANIFEST = "manifest.jws"


def is_encrypted(files: Mapping[str, object]) -> bool:
    """A fetched package is encrypted when it is a manifest and ciphertext files (docs/package-format.md)."""
    return MANIFEST in files and all(path == MANIFEST or path.startswith("blobs/") for path in files)


def _release(launch: Launch, token: bytes, kbs_url: str | None, publisher_pem: str | None,
             origin: str) -> tuple[Any, bytes]:
    """(the verified manifest, its content key from the broker); :class:`StageFailure` naming why not."""
    from enarx.errors import EnarxError
    from enarx.kbs.client import KbsClient
    from enarx.packaging import keys, manifest
    from enarx.runtime.attest.kbs import tee_evidence_for
    from enarx.runtime.stages.attest import evidence_source

    if publisher_pem is None:
        raise StageFailure(f"{origin} is encrypted: pin its publisher with --publisher-key")
    if kbs_url is None:
        raise StageFailure(f"{origin} is encrypted: name the key broker that holds its key with --kbs URL")
    try:
        publisher = keys.parse_public_key(publisher_pem.encode(), "the pinned publisher key")
        doc = manifest.verify(token, publisher)
        if doc.resource is None:
            raise StageFailure(f"{origin} names no key broker resource (it was made for `enarx push`)")
        tee, evidence_for = tee_evidence_for(evidence_source(launch))
        client = KbsClient(kbs_url, ca_bundle_pem=launch.request.ca_bundle_pem)
        client.attest(tee, evidence_for, package=doc.digest, isolation=launch.request.isolation)
        return doc, client.resource(doc.resource)
    except EnarxError as exc:  # the package, the broker's refusal (with its rules), the keep's evidence, TLS
        raise StageFailure(f"{origin}: {exc}") from None


def load_release(simulate_tee: str | None) -> None:
    """Import what the key release and the decryption run (the broker's client, JOSE, the evidence source —
    the simulator's with ``simulate_tee``), so that a keep started before its launch (``enarx deploy`` of an
    encrypted package) loads them while the host still resolves the package, not while it downloads."""
    import enarx.kbs.client
    import enarx.packaging.manifest
    import enarx.packaging.unseal
    import enarx.runtime.attest.kbs
    import enarx.runtime.provision
    import enarx.runtime.stages.attest

    if simulate_tee:
        import enarx.attestation.simulate.persistent
        import enarx.runtime.attest.simulated

        if simulate_tee in ("sev-snp", "snp"):
            import enarx.attestation.simulate.snp
        else:
            import enarx.attestation.simulate.intel  # noqa: F401


class EarlyRelease:
    """Verify the manifest and obtain the key in a thread, as soon as the fetch has the (checked) manifest:
    the ciphertext, one level deeper in the package's tree, is still downloading."""

    def __init__(self, launch: Launch):
        self.launch = launch
        self.result: tuple[bytes, Any, bytes] | None = None  # (manifest token, manifest, key)
        self._thread: threading.Thread | None = None

    def offer(self, path: str, content: bytes) -> None:
        """``on_file`` of the fetch: a top-level ``manifest.jws`` starts the release (once)."""
        if path == MANIFEST and self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(bytes(content),), name="early-key-release",
                                            daemon=True)
            self._thread.start()

    def _run(self, token: bytes) -> None:
        req = self.launch.request
        try:
            doc, key = _release(self.launch, token, req.kbs_url, req.publisher_key_pem, "the package")
            self.result = (token, doc, key)
        except Exception:  # noqa: BLE001, S110 - unlock() does it again and reports what is wrong
            pass

    def key_for(self, token: bytes) -> tuple[Any, bytes] | None:
        """The manifest and key released for exactly ``token``, if the early release got them."""
        if self._thread is None:
            return None
        self._thread.join()
        if self.result is not None and self.result[0] == bytes(token):
            return self.result[1], self.result[2]
        return None


def unlock(launch: Launch, files: Mapping[str, bytes], *, kbs_url: str | None, publisher_pem: str | None,
           origin: str, digests_checked: bool = False, early: EarlyRelease | None = None) -> None:
    """Verify, obtain the key, decrypt and install ``files`` (``manifest.jws`` and ``blobs/…``).

    ``digests_checked``: the fetch already checked every file against digests bound into the launch (a
    registry tree), so the manifest's SHA-256 of each is not computed again — sizes are still checked, and
    every chunk is authenticated under the package's key whatever the digests say. ``early``: a release
    started while the files downloaded; used only for the very manifest fetched here."""
    from enarx.errors import EnarxError
    from enarx.packaging import unseal

    started = time.perf_counter()
    token = bytes(files[MANIFEST])
    released = early.key_for(token) if early is not None else None
    doc, key = released or _release(launch, token, kbs_url, publisher_pem, origin)
    waited = time.perf_counter()
    try:
        blobs = {path: data for path, data in files.items() if path != MANIFEST}
        plaintext = unseal.open_package(unseal.MemorySource(blobs), doc, key, verify_digests=not digests_checked)
    except EnarxError as exc:
        raise StageFailure(f"{origin}: {exc}") from None
    _log("package %s: key %s after %.3f s more, decrypted in %.3f s", doc.package_id,
         "released early" if released else "released", waited - started, time.perf_counter() - waited)
    install(launch, plaintext, f"{origin} (package {doc.package_id})")


def install(launch: Launch, files: dict[str, bytearray], origin: str) -> None:
    from enarx.runtime.provision import install as install_package

    install_package(launch, files, origin)


def _log(message: str, *args: object) -> None:
    import logging

    logging.getLogger("enarx.keep").debug(message, *args)
