"""The one error type of encrypted packages: a one-line message and a stable ``reason`` token."""

from __future__ import annotations

from enarx.errors import EnarxError


class PackageError(EnarxError):
    """An encrypted package (or a key for it) is malformed, tampered with, or does not belong together.

    ``reason`` tokens: ``format`` (malformed bytes or JSON), ``signature`` (manifest not signed by the
    pinned publisher key), ``digest`` (ciphertext differs from the manifest), ``tampered`` (a chunk fails
    authentication: modified, reordered, swapped or truncated), ``wrong-key`` (the key is not this
    package's), ``policy`` (the manifest's keep policy does not parse), ``io``.
    """

    def __init__(self, message: str, reason: str = "format"):
        super().__init__(message)
        self.reason = reason
