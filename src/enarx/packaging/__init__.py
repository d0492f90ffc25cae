"""Encrypted packages: a workload and its data sealed for keeps that satisfy a policy.

One job per module (the format is specified in ``docs/package-format.md``):

* :mod:`.errors`   — the one error type, with a stable ``reason`` token.
* :mod:`.stream`   — chunked AEAD (STREAM construction) for one file: streaming, reorder/truncation safe.
* :mod:`.keys`     — content keys, their commitment (key id), and publisher signing keys.
* :mod:`.manifest` — the signed manifest: ciphertext digests, key id, the keep policy; JWS with a pinned key.
* :mod:`.index`    — the encrypted file index (paths, sizes, kinds are confidential too).
* :mod:`.seal`     — build an encrypted package from a plaintext package directory.
* :mod:`.unseal`   — open an encrypted package with its content key (inside the keep), in memory.
"""
