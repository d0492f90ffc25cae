"""The collateral a verifier's operator holds: read once, parsed once, preferred over older copies.

A Steward (``--collateral DIR``) or ``enarx attest verify --collateral`` loads it from collateral cache
directories (the layout :mod:`.cache` writes), plain directories or files of certificates, CRLs and Intel
JSON, and cache bundles (``.tar.gz``, checked against their manifest). It fills in what evidence does
not carry — an Intel QE identity, a TDX keep's TCB info, CRLs, intermediates — and it is the reference
for freshness: collateral supplied with evidence that is older than what the store holds is refused
(a keep cannot roll a CRL or TCB info back to one that predates a revocation or a TCB recovery).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enarx.attestation.collateral import CollateralError, add_bytes, der_of, load_collateral
from enarx.attestation.model import AttestationError, CollateralSet
from enarx.attestation.pki import Cert, CertificateFormatError, Crl


@dataclass
class CollateralStore:
    certificates: list[Cert] = field(default_factory=list)
    crls: list[Crl] = field(default_factory=list)
    json_documents: list[tuple[str, bytes]] = field(default_factory=list)  # Intel TCB info / QE identity
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # files in a directory that were skipped as not collateral

    @classmethod
    def from_set(cls, collateral: CollateralSet, sources: Iterable[str] = ()) -> CollateralStore:
        """Parse and check everything in ``collateral`` now, so a bad file is found at start-up."""
        from enarx.attestation.intel.collateral import is_intel_document, parse_document

        store = cls(sources=list(sources))
        seen: set[bytes] = set()
        try:
            for item in [*collateral.certificates, *collateral.raw_certificates]:
                der = der_of(item)
                if der not in seen:
                    seen.add(der)
                    store.certificates.append(Cert.from_der(der))
            for item in [*collateral.crls, *collateral.raw_crls]:
                der = der_of(item)
                if der not in seen:
                    seen.add(der)
                    store.crls.append(Crl.from_der(der))
        except CertificateFormatError as exc:
            raise CollateralError(f"collateral store: {exc}") from None
        for name, raw in collateral.json_documents:
            if is_intel_document(raw):
                try:
                    parse_document(raw, name)
                except AttestationError as exc:
                    raise CollateralError(str(exc)) from None
                store.json_documents.append((name, raw))
        return store

    @classmethod
    def load(cls, paths: Iterable[str | Path], extra: CollateralSet | None = None) -> CollateralStore:
        """Directories, files and ``.tar.gz`` bundles (plus ``extra``), merged."""
        merged = extra or CollateralSet()
        sources = []
        for path in paths:
            path = Path(path)
            sources.append(str(path))
            if path.is_file() and tarfile.is_tarfile(path):
                merged = merged.merge(_bundle(path))
            else:
                merged = merged.merge(load_collateral([path]))
        store = cls.from_set(merged, sources)
        store.warnings = list(merged.warnings)
        return store

    def extended(self, extra: CollateralSet) -> CollateralStore:
        """This store plus ``extra`` (e.g. built-in intermediates), checked like the rest."""
        more = CollateralStore.from_set(extra)
        seen = {c.der for c in self.certificates} | {c.der for c in self.crls}
        return CollateralStore([*self.certificates, *(c for c in more.certificates if c.der not in seen)],
                               [*self.crls, *(c for c in more.crls if c.der not in seen)],
                               [*self.json_documents, *more.json_documents], list(self.sources))

    def rollbacks(self, replacement: CollateralStore) -> list[str]:
        """What ``replacement`` holds that is older than what this store holds: a CRL of the same issuer, or
        Intel TCB info / QE identity of the same kind and platform, issued earlier. A reload that would
        lower the verifier's reference for freshness (a replayed download, a restored backup) is refused."""
        found = []
        mine = _freshest_crls(self.crls)
        for key, crl in _freshest_crls(replacement.crls).items():
            held = mine.get(key)
            if held is not None and held.newer_than(crl):
                found.append(f"the CRL of {crl.name} (thisUpdate {crl.this_update.isoformat()}) is older than the "
                             f"one held (thisUpdate {held.this_update.isoformat()})")
        docs = _freshest_documents(self.json_documents)
        for key, (number, issued) in _freshest_documents(replacement.json_documents).items():
            held_doc = docs.get(key)
            if held_doc is not None and held_doc > (number, issued):
                found.append(f"{key[0]} {key[1]} (evaluation data number {number}, issued {issued.isoformat()}) is "
                             f"older than the one held ({held_doc[0]}, {held_doc[1].isoformat()})")
        return found

    def __len__(self) -> int:
        return len(self.certificates) + len(self.crls) + len(self.json_documents)

    def describe(self) -> str:
        return (f"{len(self.certificates)} certificates, {len(self.crls)} CRLs, "
                f"{len(self.json_documents)} Intel documents from {', '.join(self.sources) or 'memory'}")


def _bundle(path: Path) -> CollateralSet:
    from enarx.attestation.cache import CacheError, read_bundle

    try:
        files = read_bundle(path)
    except CacheError as exc:
        raise CollateralError(str(exc)) from None
    out = CollateralSet()
    for name, data in sorted(files.items()):
        try:
            add_bytes(out, data, f"{path}!{name}")
        except CertificateFormatError:
            out.warnings.append(f"skipped {path}!{name}: not collateral")
    return out


def _freshest_crls(crls: list[Crl]) -> dict[tuple[bytes, bytes | None], Crl]:
    out: dict[tuple[bytes, bytes | None], Crl] = {}
    for crl in crls:
        key = (crl.issuer_der, crl.authority_key_id)
        if key not in out or crl.newer_than(out[key]):
            out[key] = crl
    return out


def _freshest_documents(documents: list[tuple[str, bytes]]) -> dict[tuple[str, str], tuple[int, Any]]:
    """(kind, platform) → the newest (evaluation data number, issue date) among Intel TCB infos and QE
    identities (the documents were parsed and checked when the store was made)."""
    from enarx.attestation.intel.collateral import parse_document, recency

    out: dict[tuple[str, str], tuple[int, Any]] = {}
    for name, raw in documents:
        parsed = parse_document(raw, name)
        items = [(("TCB info", f"{t.id} FMSPC {t.fmspc.hex()}"), t) for t in parsed.tcb_infos]
        items += [(("identity", q.id), q) for q in parsed.qe_identities]
        for key, item in items:
            rank = recency(item)
            if key not in out or rank > out[key]:
                out[key] = rank
    return out
