"""What the host binds into a keep at launch, before anything runs: SEV-SNP HOST_DATA, TDX MRCONFIGID.

A keep started with ``enarx run --await-push --publisher-key PUB`` carries the RFC 7638 thumbprint of the
publisher key (32 bytes; in MRCONFIGID followed by 16 zero bytes): its evidence says "I run only packages this
key signed", and a pushing owner checks that. A keep started by ``enarx deploy`` of a registry tag carries the
digest of the package's tree root as the host resolved it: its SHA-256 as HOST_DATA, its SHA-384 as
MRCONFIGID — what the registry checks before it serves the keep a private tag. A VM keep given its package at
launch (``enarx run``) carries :func:`enarx.workload.package_digest` of it instead. Without anything to bind it
is all zeros. Real hardware takes the value from the VMM at launch; the simulator puts it into the report it
makes.

The host writes the launch request, so a keep first refuses one that names more than one package
(:func:`check_one_package`): otherwise its evidence could name one package (a registry tag) while it runs
another (the host's module, or whatever the host pushes).
"""

from __future__ import annotations

from enarx.protocol import LaunchRequest

NOTHING = bytes(32)


def check_one_package(req: LaunchRequest, module: bytes | memoryview = b"") -> None:
    """Raise :class:`~enarx.errors.KeepError` unless the launch names exactly one source for the package it
    runs — the ``module`` it carries, a registry package it fetches, or a pushed one — and a bound tag entry
    only together with the URL the keep fetches it from (and checks it against)."""
    from enarx.errors import KeepError

    sources = [what for what, named in (
        ("the module it carries", len(module) > 0),
        (f"the registry package at {req.package_url}", req.package_url is not None),
        ("a pushed package", req.await_push)) if named]
    if len(sources) > 1:
        raise KeepError(f"the launch request names both {' and '.join(sources)}: a keep runs only the package its "
                        "launch binds")
    if req.package_root is not None and req.package_url is None:
        raise KeepError("the launch request names a registry tag but no URL to fetch it from: a keep runs only the "
                        "package its launch binds")


def host_data(req: LaunchRequest, tee: str = "sev-snp") -> bytes:
    """The launch data this launch binds for ``tee``: 32 bytes (SEV-SNP HOST_DATA) or, for ``tdx``, 48
    (MRCONFIGID); zeros when it binds nothing."""
    check_one_package(req)
    tdx = tee == "tdx"
    if req.await_push and req.publisher_key_pem is not None:
        from enarx.packaging import keys

        thumbprint = keys.publisher_host_data(keys.parse_public_key(req.publisher_key_pem.encode(),
                                                                    "the publisher key"))
        return thumbprint.ljust(48, b"\0") if tdx else thumbprint
    if req.package_root is not None:
        from enarx.runtime.fetch import bound_root

        root = bound_root(req)
        return root.digests["sha-384" if tdx else "sha-256"]
    return bytes(48) if tdx else NOTHING


def launch_binding(req: LaunchRequest, wasm: bytes | memoryview, tree: bytes, tee: str) -> bytes:
    """What a confidential VM keep's launch binds (``tee``: ``sev-snp`` or ``tdx``): the package the keep
    fetches or is pushed (:func:`host_data`), else the package it is given at launch."""
    check_one_package(req, wasm)
    if req.package_url is not None or req.await_push:
        return host_data(req, tee)
    from enarx.workload import package_digest

    return package_digest(bytes(wasm), req.config_toml, tree, "sha384" if tee == "tdx" else "sha256")
