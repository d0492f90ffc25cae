"""The keep's fetch stage (``enarx deploy``): get the package from the registry *inside* the keep.

The host resolved the package's tag to its entry (the tree's digests, not its content) and bound that
entry into the launch; the keep has put it into its evidence (SEV-SNP ``host_data``) and, with a Steward,
attested already. Now it fetches the tag and every node of its tree over TLS — presenting its Steward
certificate, so a private repository's keep policy can admit it — and checks each object against the entry
that names it, starting from the bound one. Nothing of the package passes through the host.

An *encrypted* package (``manifest.jws`` and ``blobs/``: ciphertext only) is opened with a key from the key
broker (:mod:`enarx.runtime.unlock`): the keep verifies the manifest against the publisher key the deployer
pinned, attests to the broker naming the package, and decrypts in its own memory. A launch that pins a
publisher refuses a package that is not encrypted.

Where wasmtime must preopen data directories (``dir`` entries of the package's Enarx.toml), the files are
staged in a private (0700) directory that is deleted when the keep ends; a nil keep has no memory of its
own to hold them in, and it protects nothing from its host anyway. A module fetched with the keep's
certificate (possibly private) never goes into the host's module cache.

A bound tag is its publisher's whole configuration: the evidence names the tree, Enarx.toml included, so
the host may not replace that Enarx.toml (``--wasmcfgfile``) nor add directories (``--dir``, which could
shadow the package's own), and the package's ``dir`` entries and CA bundles must stay inside its tree.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from enarx.errors import ConfigError, KeepError
from enarx.protocol import LaunchRequest
from enarx.runtime.launch import Launch, StageFailure, config_failure

CT_WASM = "application/wasm"
CT_TOML = "application/toml"


class FetchedPackage(NamedTuple):
    module: bytes
    module_name: str
    config_toml: str | None
    config_source: str | None  # where relative `dir` paths of the Enarx.toml resolve (the staging directory)
    staging: str | None  # a private directory to delete when the keep ends
    encrypted: dict[str, bytes] | None = None  # an encrypted package's files (ciphertext), opened by unlock()


def host_override(bound: bool, config: bool, dirs: bool) -> str | None:
    """Why the host's Enarx.toml (``config``) or ``--dir`` preopens (``dirs``) cannot go with this launch (None:
    they can): a ``bound`` tag brings its own Enarx.toml, which the host may neither replace nor extend."""
    if not bound:
        return None
    if config:
        return ("--wasmcfgfile cannot be used with a registry package: the keep runs the package's own Enarx.toml, "
                "the one its evidence names (give the Steward with --steward)")
    if dirs:
        return ("--dir cannot be used with a registry package: the host may not add directories to the package "
                "its evidence names (publish the files in the package's tree)")
    return None


def fetch(launch: Launch) -> None:
    """Stage (after attest): fetch a deployed package, then plan again with the package's own Enarx.toml
    (for an unbound ``.wasm`` URL, the one the user gave with ``--wasmcfgfile``)."""
    req = launch.request
    if req.package_url is None:
        return
    refusal = host_override(req.package_root is not None, req.config_toml is not None, bool(req.dirs))
    if refusal is not None:  # checked by the host already; the keep does not rely on that
        raise StageFailure(refusal)
    from enarx.runtime.stages.plan import plan

    early = None
    if req.kbs_url is not None and req.publisher_key_pem is not None:  # an encrypted package: get its key
        from enarx.runtime.unlock import EarlyRelease  # as soon as its manifest is in, while the ciphertext

        early = EarlyRelease(launch)  # downloads
    try:
        package = fetch_package(req, launch.identity, on_file=early.offer if early is not None else None)
    except KeepError as exc:
        raise StageFailure(str(exc)) from None
    if package.encrypted is not None:
        from enarx.runtime.unlock import unlock

        unlock(launch, package.encrypted, kbs_url=req.kbs_url, publisher_pem=req.publisher_key_pem,
               origin=f"the encrypted package at {req.package_url}", digests_checked=True, early=early)
        return
    if req.publisher_key_pem is not None:
        raise StageFailure(f"the package at {req.package_url} is not encrypted, but its publisher was pinned "
                           "(--publisher-key): refusing to run a package its publisher did not sign")
    launch.staging_dir = package.staging
    if req.config_toml is None:  # its `dir` entries and CA bundles stay inside the staged tree
        req = req._replace(config_toml=package.config_toml, config_source=package.config_source,
                           package_dir=package.staging if package.config_toml is not None else None)
    if identity_used(launch):
        req = req._replace(cache_dir=None)  # a private package's module never goes into the host's cache
    launch.request = req._replace(module_name=package.module_name)
    launch.wasm = launch.module_bytes = package.module
    if identity_used(launch):  # possibly private: what the keep reports about its Enarx.toml names keys only
        launch.withhold_config = f"the package at {req.package_url}"
    plan(launch)
    check_package_paths(launch)


def check_package_paths(launch: Launch) -> None:
    """The package's directories and CA bundles are in its own staged tree: checked now, before anything opens
    them, so that a refusal names the entry (and a private one, only its key)."""
    from enarx.config.validate import check_config

    config = launch.need_plan().config
    if launch.request.package_dir is None or config is None:
        return
    try:
        check_config(config, package_root=launch.request.package_dir)
    except ConfigError as exc:
        raise config_failure(launch, str(exc)) from None


def identity_used(launch: Launch) -> bool:
    """The fetch presented the keep's certificate (a private package, possibly)."""
    return launch.identity is not None and bool(getattr(launch.identity, "chain", None))


def bound_root(req: LaunchRequest) -> Any:
    """The tag entry the host bound into this launch (an :class:`~enarx.drawbridge.content.Entry`), or None."""
    if req.package_root is None:
        return None
    from enarx.drawbridge.content import Entry, parse_canonical

    try:
        return Entry.from_json(parse_canonical(req.package_root.encode(), "bound tag entry"))
    except ValueError as exc:
        raise KeepError(f"the launch's package entry is malformed: {exc}") from None


def tls_context(ca_bundle_pem: str | None, identity: Any = None) -> ssl.SSLContext:
    """Verifying TLS client context: system roots plus the launch's bundle, and the keep's certificate."""
    from enarx.cabundle import client_context

    context = client_context(None)
    if ca_bundle_pem:
        try:
            context.load_verify_locations(cadata=ca_bundle_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise KeepError(f"the launch's CA bundle cannot be used: {exc}") from None
    if identity is not None and identity.chain:
        identity.load_into(context)
    return context


def fetch_package(req: LaunchRequest, identity: Any = None, *,
                  on_file: Callable[[str, bytes], None] | None = None) -> FetchedPackage:
    """Fetch ``req.package_url`` and check it; raises :class:`KeepError` naming what failed. ``on_file(path,
    content)`` hears of each file of a registry tree as soon as it is checked."""
    import httpx

    from enarx.drawbridge.client import RegistryError, fetch_tree

    url = req.package_url
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise KeepError(f"refusing to fetch the package from {url!r}: only https URLs")
    host = parts.netloc
    expected = bound_root(req)
    try:
        with httpx.Client(verify=tls_context(req.ca_bundle_pem, identity), timeout=60,
                          headers={"User-Agent": "enarx-keep"}) as http:
            if expected is None and not _is_tag_url(url):
                return _plain_module(http, url)
            tree = fetch_tree(http, host, url, expected, on_file=on_file)
    except RegistryError as exc:
        raise KeepError(f"cannot fetch the package: {exc}") from None
    except httpx.HTTPError as exc:
        raise KeepError(f"cannot fetch the package from {host}: {exc}") from None
    if "" in tree.files:  # a one-file tree: the module itself
        if tree.root.type != CT_WASM:
            raise KeepError(f"the package at {url} is a {tree.root.type} file, not a WebAssembly module")
        return FetchedPackage(tree.files[""], "main.wasm", None, None, None)
    return _package_from_tree(url, tree)


def _is_tag_url(url: str) -> bool:
    segments = urlsplit(url).path.rstrip("/").split("/")
    return len(segments) >= 2 and segments[-2] == "_tag"


def _plain_module(http: Any, url: str) -> FetchedPackage:
    response = http.get(url)
    if response.status_code != 200:
        raise KeepError(f"cannot fetch the package: {urlsplit(url).netloc} answered HTTP {response.status_code}")
    if response.headers.get("content-type", "").split(";")[0].strip() != CT_WASM:
        raise KeepError(f"{url} is not application/wasm (give a registry tag or a .wasm URL)")
    return FetchedPackage(response.content, os.path.basename(urlsplit(url).path) or "main.wasm", None, None, None)


def _package_from_tree(url: str, tree: Any) -> FetchedPackage:
    from enarx.drawbridge.tree import TOP_LEVEL_FILES
    from enarx.runtime.unlock import is_encrypted

    if is_encrypted(tree.files):  # ciphertext: nothing to stage, nothing to read before the key is released
        return FetchedPackage(b"", "main.wasm", None, None, None, encrypted=tree.files)

    module = tree.files.get("main.wasm")
    if module is None:
        raise KeepError(f"the package at {url} has no main.wasm")
    config = tree.files.get("Enarx.toml")
    try:
        config_text = config.decode() if config is not None else None
    except UnicodeDecodeError:
        raise KeepError(f"the package at {url} has an Enarx.toml that is not UTF-8") from None
    data = {path: content for path, content in tree.files.items() if path not in TOP_LEVEL_FILES}
    staging = None
    if data or config_text is not None:  # the Enarx.toml's relative `dir` paths resolve in the staging
        staging = tempfile.mkdtemp(prefix="enarx-package-")  # mode 0700
        try:
            for directory in tree.directories:
                os.makedirs(os.path.join(staging, directory), mode=0o700, exist_ok=True)
            for path, content in data.items():
                fd = os.open(os.path.join(staging, path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
        except OSError as exc:
            remove_staging(staging)
            raise KeepError(f"cannot stage the package's data files: {exc}") from None
    source = os.path.join(staging, "Enarx.toml") if staging and config_text is not None else None
    return FetchedPackage(module, "main.wasm", config_text, source, staging)


def remove_staging(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)
