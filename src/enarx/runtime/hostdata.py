"""What the host binds into a keep at launch, before anything runs: SEV-SNP HOST_DATA, TDX MRCONFIGID.

A keep started with ``enarx run --await-push --publisher-key PUB`` carries the RFC 7638 thumbprint of the
publisher key (32 bytes): its evidence says "I run only packages this key signed", and a pushing owner checks
that. A keep started by ``enarx deploy`` carries the SHA-256 of the package's tree as the host resolved it
(:func:`enarx.runtime.fetch.host_data`). Without anything to bind it is 32 zero bytes. Real hardware takes the value from the VMM at launch; the
simulator puts it into the report it makes.
"""

from __future__ import annotations

from enarx.protocol import LaunchRequest

NOTHING = bytes(32)


def host_data(req: LaunchRequest) -> bytes:
    """The 32 bytes this launch binds (zeros when it binds nothing)."""
    if req.await_push and req.publisher_key_pem is not None:
        from enarx.packaging import keys

        return keys.publisher_host_data(keys.parse_public_key(req.publisher_key_pem.encode(), "the publisher key"))
    if req.package_root is not None:
        from enarx.runtime.fetch import host_data as tree_digest

        return tree_digest(req)
    return NOTHING
