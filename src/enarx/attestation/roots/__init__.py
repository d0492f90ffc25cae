"""Built-in vendor trust anchors, shipped as package data and pinned by SHA-256 in code.

The PEM files next to this module are AMD's published KDS certificates (``/vcek/v1/<product>/cert_chain``
and ``/vlek/v1/<product>/cert_chain``: ARK, ASK and ASVK for Milan, Genoa and Turin), the Intel SGX
Root CA, the AWS Nitro Enclaves root and the NVIDIA Device Identity CA. They are public vendor certificates; each file is pinned below by the SHA-256 of its DER, so a
modified package data file is refused at load rather than silently trusted.

Only the **roots** (ARK per product, Intel SGX Root CA, AWS Nitro root, NVIDIA Device Identity CA) are
trust anchors. ASK/ASVK are shipped so that
collateral caches and air-gapped sites need not fetch them, but verification builds chains from the
certificates the caller supplies (a Milan VCEK presented with Genoa's chain must fail), ending at an
anchor. Roots that arrive with collateral are never anchors; test anchors come only from an explicit
``--trust-anchor`` (see :mod:`enarx.attestation.anchors`, which binds every anchor to its formats), and
every verdict that relied on one carries a warning.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from enarx.attestation.anchors import Anchor, TrustAnchors, load_anchor_file
from enarx.attestation.pki import Cert, split_pem

__all__ = ["PINS", "PRODUCTS", "Anchor", "Cert", "TrustAnchors", "builtin_anchors", "load_anchor_file",
           "vendor_anchors"]

PRODUCTS = ("Milan", "Genoa", "Turin")

# SHA-256 of each shipped certificate's DER. Cross-checked against AMD KDS responses recorded by
# independent projects (and, in tests, against the shared corpus when present).
PINS: dict[str, str] = {
    "amd_milan_ark.pem": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "amd_milan_ask.pem": "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
    "amd_milan_asvk.pem": "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    "amd_genoa_ark.pem": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "amd_genoa_ask.pem": "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
    "amd_genoa_asvk.pem": "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    "amd_turin_ark.pem": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
    "amd_turin_ask.pem": "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
    "amd_turin_asvk.pem": "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
    "intel_sgx_root_ca.pem": "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3",
    "aws_nitro_root.pem": "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b",
    "nvidia_device_identity_ca.pem": "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48",
}


class RootIntegrityError(RuntimeError):
    """A shipped root file does not match its pin: the installation has been tampered with."""


@cache
def load(filename: str) -> Cert:
    """One shipped certificate, checked against its pin."""
    if filename not in PINS:
        raise KeyError(filename)
    data = resources.files(__name__).joinpath(filename).read_bytes()
    blocks = split_pem(data)
    if len(blocks) != 1:
        raise RootIntegrityError(f"{filename}: expected one certificate, found {len(blocks)}")
    der = blocks[0][1]
    if hashlib.sha256(der).hexdigest() != PINS[filename]:
        raise RootIntegrityError(f"{filename}: SHA-256 does not match the pinned value")
    return Cert.from_der(der)


def ark(product: str) -> Cert:
    return load(f"amd_{_product(product)}_ark.pem")


def ask(product: str) -> Cert:
    return load(f"amd_{_product(product)}_ask.pem")


def asvk(product: str) -> Cert:
    return load(f"amd_{_product(product)}_asvk.pem")


def intel_sgx_root() -> Cert:
    return load("intel_sgx_root_ca.pem")


def _product(product: str) -> str:
    base = product.split("-")[0].capitalize()
    if base not in PRODUCTS:
        raise KeyError(f"unknown AMD product {product!r} (known: {', '.join(PRODUCTS)})")
    return base.lower()


def aws_nitro_root() -> Cert:
    return load("aws_nitro_root.pem")


def nvidia_device_identity_ca() -> Cert:
    return load("nvidia_device_identity_ca.pem")


def amd_roots() -> list[Cert]:
    return [ark(p) for p in PRODUCTS]


def builtin_roots() -> list[Cert]:
    """Every built-in anchor: AMD ARK per product, Intel SGX Root CA, AWS Nitro root, NVIDIA Device Identity CA."""
    return [*amd_roots(), intel_sgx_root(), aws_nitro_root(), nvidia_device_identity_ca()]


@cache
def vendor_anchors() -> tuple[Anchor, ...]:
    """The built-in roots, each bound to its formats: ARK per product → ``snp``; Intel SGX Root CA →
    ``sgx``, ``tdx``; AWS Nitro root → ``nitro``; NVIDIA Device Identity CA → ``nvidia``."""
    return (
        *(Anchor(ark(p), frozenset({"snp"}), product=p) for p in PRODUCTS),
        Anchor(intel_sgx_root(), frozenset({"sgx", "tdx"})),
        Anchor(aws_nitro_root(), frozenset({"nitro"})),
        Anchor(nvidia_device_identity_ca(), frozenset({"nvidia"})),
    )


def builtin_anchors(extra: list[Any] | None = None) -> TrustAnchors:
    """The vendor roots plus ``extra`` test anchors (:class:`Anchor` objects, or certificates in any form,
    bound to the formats their name and key fit)."""
    extra = list(extra or [])
    anchors = TrustAnchors(vendor_anchors() + tuple(a for a in extra if isinstance(a, Anchor)))
    certs = [a for a in extra if not isinstance(a, Anchor)]
    return anchors.with_test(certs) if certs else anchors
