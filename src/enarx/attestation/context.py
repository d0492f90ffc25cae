"""What one verification carries through the format verifiers: time, anchors, the Verifier's cache and
collateral store, the caller's collateral, and the trail of checks.

A format verifier (``snp/verify.py``, ``intel/verify.py``, ``nitro.py``, ``nvidia.py``) gets a
:class:`Context` and returns typed claims or raises; it never owns a cache or decides acceptability.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from enarx.attestation import chain
from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.collateral import der_of
from enarx.attestation.memo import VerifierCache
from enarx.attestation.model import (
    AttestationError,
    Check,
    CollateralSet,
    MalformedEvidence,
    VerificationError,
)
from enarx.attestation.pki import Cert, CertificateFormatError, Crl

if TYPE_CHECKING:
    from enarx.attestation.store import CollateralStore


@dataclass
class Trail:
    """Every check made so far (in order) and the warnings; an error carries the whole trail."""

    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ok(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(name, True, detail))

    def fail(self, name: str, detail: str, reason: str, exc: type[AttestationError] = VerificationError,
             **kw: Any) -> AttestationError:
        """Record a failed check; returns the error to raise (``raise trail.fail(...)``)."""
        self.checks.append(Check(name, False, detail, **kw))
        return exc(f"{name}: {detail}", reason=reason, checks=self.checks)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


@dataclass
class Context:
    fmt: str
    at: datetime
    anchors: TrustAnchors
    cache: VerifierCache
    supplied: CollateralSet
    store: CollateralStore | None = None
    trail: Trail = field(default_factory=Trail)
    _verified: set[tuple[bytes, str | bytes, str]] = field(default_factory=set)  # verified during this call
    _chains: dict[tuple[Any, ...], tuple[chain.ChainResult, list[Any], list[Any]]] = field(default_factory=dict)

    # -- parsing through the Verifier's cache ------------------------------------------------------
    def cert(self, der: bytes) -> Cert:
        return self.cache.parsed(b"cert", bytes(der), Cert.from_der)

    def crl(self, der: bytes) -> Crl:
        return self.cache.parsed(b"crl", bytes(der), Crl.from_der)

    def parsed(self, kind: bytes, data: bytes, parse: Callable[[bytes], Any]) -> Any:
        return self.cache.parsed(kind, data, parse)

    def certs(self, items: Iterable[Any], what: str = "collateral") -> list[Cert]:
        """Certificates from DER bytes / objects, de-duplicated; malformed ones are ``MalformedEvidence``."""
        seen: set[bytes] = set()
        out = []
        for item in items:
            der = der_of(item)
            if der in seen:
                continue
            seen.add(der)
            try:
                out.append(self.cert(der))
            except CertificateFormatError as exc:
                raise MalformedEvidence(f"{what}: {exc}") from None
        return out

    # -- what is available -------------------------------------------------------------------------
    def supplied_certs(self) -> list[Cert]:
        return self.certs([*self.supplied.certificates, *self.supplied.raw_certificates])

    def pool(self, *first: Cert) -> list[Cert]:
        """Certificates to build chains from: ``first``, the caller's, the store's, test intermediates."""
        out = list(first)
        out += self.supplied_certs()
        if self.store is not None:
            out += self.store.certificates
        out += self.anchors.intermediates
        seen: set[bytes] = set()
        return [c for c in out if not (c.der in seen or seen.add(c.der))]  # type: ignore[func-returns-value]

    def crl_items(self) -> list[chain.CrlItem]:
        items = []
        for raw in [*self.supplied.crls, *self.supplied.raw_crls]:
            try:
                items.append(chain.CrlItem(self.crl(der_of(raw)), False))
            except CertificateFormatError as exc:
                raise MalformedEvidence(f"collateral: {exc}") from None
        if self.store is not None:
            items += [chain.CrlItem(c, True) for c in self.store.crls]
        return items

    def json_documents(self) -> list[tuple[str, bytes, bool]]:
        """(source, raw bytes, from_store) of every JSON document available."""
        docs = [(name, raw if isinstance(raw, bytes) else str(raw).encode(), False)
                for name, raw in self.supplied.json_documents]
        if self.store is not None:
            docs += [(name, raw, True) for name, raw in self.store.json_documents]
        return docs

    # -- signatures and chains ---------------------------------------------------------------------
    def signed(self, tag: bytes, signer: Cert, signed: str | bytes, verify: Callable[[], bool]) -> bool:
        """``verify()`` — a pure function of the signed object and the signer's key — through the memo.

        ``signed`` identifies the signed object with its signature (a certificate's or CRL's SHA-256, or a
        digest of signed bytes and signature). Within one verification each signature is checked at most
        once, memo or not (two chains may share a link)."""
        key = (tag, signed, signer.spki_sha256)
        if key in self._verified:
            return True
        ok = self.cache.signature(key, verify)
        if ok:
            self._verified.add(key)
        return ok

    def chain(self, leaf: Cert, scope: chain.CrlScope, *, name: str = "chain", pool: list[Cert] | None = None,
              crls: list[chain.CrlItem] | None = None, max_depth: int = 6) -> chain.ChainResult:
        """:func:`chain.validate` ``leaf`` (with the caller's pool and CRLs, the store's, by default); the same
        chain asked for twice in one verification (Intel's TCB info and QE identity signer) is validated once."""
        pool = self.pool() if pool is None else pool
        crls = self.crl_items() if crls is None else crls
        key = (leaf.sha256, scope, max_depth, id(pool), id(crls))  # the lists live as long as this call
        done = self._chains.get(key)
        if done is not None:  # (the entry keeps its lists alive, so their ids cannot be reused meanwhile)
            self.trail.ok(name, f"the same chain as before: {' → '.join(c.name for c in done[0].path)}")
            return done[0]
        result = chain.validate(self, leaf, pool, crls, scope, name=name, max_depth=max_depth)
        self._chains[key] = (result, pool, crls)
        return result
