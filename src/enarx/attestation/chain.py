"""The one X.509 path validator, for every evidence format.

``leaf → … → anchor`` where the anchor must be bound to the format being verified (see
:mod:`.anchors`). The same rules everywhere:

* issuers are found by name *and key* (AuthorityKeyIdentifier ↔ SubjectKeyIdentifier when both are
  present), then by signature; an issuer that is not a CA (basicConstraints) cannot extend a chain,
  except an explicitly trusted anchor;
* a self-signed certificate that is not an anchor for this format ends the path with
  ``untrusted-root`` (and says so when it is an anchor for another format);
* every certificate, the anchor included, must be valid at the evaluation time: after notAfter is
  ``expired``, before notBefore is ``not-yet-valid``;
* for each link, the CRLs issued by the issuer (name and key identifier match, signature verifies;
  a same-named CRL with a matching key identifier whose signature fails is a forgery: ``signature``)
  are reduced to the freshest; a caller-supplied CRL older than the freshest the verifier's collateral
  store holds is ``stale-collateral``; the freshest must be current (``expired`` / ``not-yet-valid``;
  a CRL without nextUpdate cannot be shown current: ``collateral``) and must not list the certificate
  (``revoked``);
* revocation coverage is reported, not decided: :class:`~.model.Revocation` over the links the vendor
  covers by CRL (:class:`CrlScope`). Policy decides what coverage it accepts.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from enarx.attestation.anchors import Anchor
from enarx.attestation.model import Check, Revocation
from enarx.attestation.pki import Cert, CertificateFormatError, Crl

if TYPE_CHECKING:
    from enarx.attestation.context import Context


class CrlScope(enum.Enum):
    """Which links of a chain the vendor covers with CRLs."""

    ALL = "all"  # Intel: PCK CA CRLs and the root CA CRL
    BELOW_ANCHOR = "below-anchor"  # AMD: the ARK's CRL covers ASK/ASVK; VCEKs are not revoked by CRL
    NONE = "none"  # AWS Nitro (no revocation), NVIDIA (OCSP only): revocation not available


_ALL, _BELOW_ANCHOR, _NONE = CrlScope.ALL, CrlScope.BELOW_ANCHOR, CrlScope.NONE  # (enum lookups are slow)


class CrlItem(NamedTuple):
    crl: Crl
    from_store: bool  # held by the verifier's collateral store (vs. supplied with the evidence)


@dataclass(frozen=True)
class ChainResult:
    """A validated path: leaf first, the anchor's certificate last."""

    path: tuple[Cert, ...]
    anchor: Anchor
    revocation: Revocation
    unchecked: tuple[str, ...]  # in-scope links without a CRL, for messages
    expiry: datetime  # earliest notAfter / nextUpdate among everything the path relied on

    @property
    def leaf(self) -> Cert:
        return self.path[0]


def coverage(results: Sequence[ChainResult]) -> tuple[Revocation, tuple[str, ...]]:
    """The revocation coverage of several chains vouching for one piece of evidence."""
    kinds = {r.revocation for r in results} - {Revocation.NOT_AVAILABLE}
    unchecked = tuple(dict.fromkeys(u for r in results for u in r.unchecked))
    if not kinds:
        return Revocation.NOT_AVAILABLE, unchecked
    if kinds == {Revocation.FULL}:
        return Revocation.FULL, unchecked
    if kinds == {Revocation.NOT_CHECKED}:
        return Revocation.NOT_CHECKED, unchecked
    return Revocation.PARTIAL, unchecked


def validate(ctx: Context, leaf: Cert, pool: Sequence[Cert], crls: Sequence[CrlItem], scope: CrlScope, *,
             name: str = "chain", max_depth: int = 6) -> ChainResult:
    """Validate ``leaf`` up to an anchor for ``ctx.fmt`` at ``ctx.at``; errors carry every check so far."""
    path, anchor = _path(ctx, leaf, pool, name, max_depth)
    _validity(ctx, path, name)
    revocation, unchecked, crl_expiry = _revocation(ctx, path, crls, scope, name)
    expiry = min([c.not_after for c in path] + crl_expiry)
    return ChainResult(tuple(path), anchor, revocation, unchecked, expiry)


def _path(ctx: Context, leaf: Cert, pool: Sequence[Cert], name: str, max_depth: int) -> tuple[list[Cert], Anchor]:
    """:func:`_build`, remembered (memo on) as a pure function of the leaf, the pool, the format's anchors and
    the check names: building a path depends on signatures only, never on time."""
    if not ctx.cache.memo:
        return _build(ctx, leaf, pool, name, max_depth)
    # the pool as one digest of its sorted certificate digests: the entry stays small whatever the keep sent,
    # so the cache's flat charge for it is honest
    pool_id = hashlib.sha256("".join(sorted({c.sha256 for c in pool})).encode()).hexdigest()
    key = (ctx.fmt, name, max_depth, leaf.sha256, pool_id, ctx.anchors.fingerprint)
    start = len(ctx.trail.checks)

    def build(_: object) -> tuple[list[Cert], Anchor, list[Check]]:
        path, anchor = _build(ctx, leaf, pool, name, max_depth)
        return path, anchor, ctx.trail.checks[start:]

    path, anchor, checks = ctx.cache.parsed(b"chain-path", key, build, weight=0)  # type: ignore[arg-type]
    if len(ctx.trail.checks) == start:  # remembered: replay the checks it made
        ctx.trail.checks.extend(checks)
    return list(path), anchor


def _build(ctx: Context, leaf: Cert, pool: Sequence[Cert], name: str, max_depth: int) -> tuple[list[Cert], Anchor]:
    trail = ctx.trail
    anchors = ctx.anchors.for_format(ctx.fmt)
    anchor_certs = [a.cert for a in anchors]
    path = [leaf]
    current = leaf
    for _ in range(max_depth):
        found = ctx.anchors.find(current)
        anchor = next((a for a in found if ctx.fmt in a.formats), None)
        if anchor is not None:
            trail.ok(f"{name}.anchor", " → ".join(c.name for c in path) + f": every signature verified, ends at "
                     f"{anchor.describe()}")
            return path, anchor
        other = next(iter(found), None)
        if other is not None:
            raise trail.fail(f"{name}.anchor", f"chain ends at {other.describe()}, which is not an anchor for "
                             f"{ctx.fmt} evidence", "untrusted-root",
                             expected=" | ".join(a.name for a in anchors) or f"an anchor for {ctx.fmt}",
                             actual=other.name)
        candidates = [c for c in (*pool, *anchor_certs) if c.may_have_issued(current) and c not in path]
        issuer = next((c for c in candidates if ctx.signed(b"x509-issued-by", c, current.sha256,
                                                           lambda c=c, cur=current: cur.signed_by(c))), None)
        if issuer is None:
            _no_issuer(ctx, current, pool, name)
        if not issuer.is_ca and not any(ctx.fmt in a.formats for a in ctx.anchors.find(issuer)):
            raise trail.fail(f"{name}.ca[{issuer.name}]", f"{current.name!r} is signed by {issuer.name!r}, which "
                             "is not a CA (basicConstraints)", "chain", expected="cA=TRUE", actual="not a CA")
        path.append(issuer)
        current = issuer
    raise trail.fail(f"{name}.length", f"certificate chain longer than {max_depth}", "chain")


def _no_issuer(ctx: Context, current: Cert, pool: Sequence[Cert], name: str) -> None:
    trail = ctx.trail
    if current.self_issued and ctx.signed(b"x509-issued-by", current, current.sha256,
                                          lambda: current.signed_by(current)):
        raise trail.fail(f"{name}.anchor", f"chain ends at {current.name!r}, a root that is not a trust anchor "
                         f"for {ctx.fmt} evidence: it arrived with the evidence or collateral (a test or simulated "
                         "PKI, whose root must be trusted explicitly)", "untrusted-root",
                         expected=f"a vendor root for {ctx.fmt} or an explicit test anchor",
                         actual=f"sha256:{current.sha256}")
    everyone = [*pool, *(a.cert for a in ctx.anchors.anchors)]
    named = [c for c in everyone if c.subject_der == current.issuer_der and c is not current]
    if named:
        trusted = [c for c in named if any(a.is_cert(c) for a in ctx.anchors.for_format(ctx.fmt))]
        what = "trusted root" if trusted else "certificate"
        raise trail.fail(f"{name}.signature[{current.name}]",
                         f"{current.name!r} names {current.issuer_name!r} as its issuer but is not signed by the "
                         f"{what} of that name we hold: it was issued by another PKI (a test or simulated one, "
                         "whose root must be trusted explicitly) or it was tampered with",
                         "untrusted-root" if trusted else "chain")
    raise trail.fail(f"{name}.issuer[{current.name}]", f"issuer {current.issuer_name!r} of {current.name!r} not "
                     "found among the evidence, the collateral or the trust anchors", "chain")


def _validity(ctx: Context, path: Sequence[Cert], name: str) -> None:
    at = ctx.at
    for cert in path:
        if at > cert.not_after:
            raise ctx.trail.fail(f"{name}.validity[{cert.name}]",
                                 f"certificate {cert.name!r} expired on {cert.not_after.isoformat()} "
                                 f"(verification time {at.isoformat()})", "expired",
                                 expected=f"notAfter >= {at.isoformat()}", actual=cert.not_after.isoformat())
        if at < cert.not_before:
            raise ctx.trail.fail(f"{name}.validity[{cert.name}]",
                                 f"certificate {cert.name!r} is not valid before {cert.not_before.isoformat()} "
                                 f"(verification time {at.isoformat()})", "not-yet-valid",
                                 expected=f"notBefore <= {at.isoformat()}", actual=cert.not_before.isoformat())
    ctx.trail.ok(f"{name}.validity", f"{len(path)} certificates valid at the verification time")


def _revocation(ctx: Context, path: Sequence[Cert], crls: Sequence[CrlItem], scope: CrlScope,
                name: str) -> tuple[Revocation, tuple[str, ...], list[datetime]]:
    trail = ctx.trail
    in_scope = checked = 0
    unchecked: list[str] = []
    expiries: list[datetime] = []
    for cert, issuer in itertools.pairwise(path):
        covered = scope is _ALL or (scope is _BELOW_ANCHOR and issuer is path[-1])
        in_scope += covered
        found = _issuer_crls(ctx, issuer, crls, name)
        if found is None:
            if covered:
                unchecked.append(f"{cert.name} (no CRL from {issuer.name})")
            continue
        freshest, signed = found
        checked += covered
        expiries.append(_current(ctx, freshest, name))
        # every CRL the issuer signed counts, not only the newest: one issuer may publish CRLs of different
        # scopes (AMD's ARK: one for ASKs, one for ASVKs), and a newer list of another scope must not hide
        # the revocation in this one
        for crl in signed:
            try:
                when = crl.revoked_on(cert.serial)
            except CertificateFormatError as exc:
                raise trail.fail(f"{name}.revocation[{cert.name}]", str(exc), "collateral") from None
            if when is not None and when <= ctx.at:
                raise trail.fail(f"{name}.revocation[{cert.name}]",
                                 f"certificate {cert.name!r} (serial {cert.serial:#x}) was revoked by the CRL of "
                                 f"{crl.name!r} on {when.isoformat()}", "revoked",
                                 expected="not listed", actual=f"serial {cert.serial:#x} listed")
    if scope is _NONE:
        return Revocation.NOT_AVAILABLE, (), expiries
    if checked == in_scope:
        trail.ok(f"{name}.revocation", "no certificate listed in a current CRL of its issuer")
        return Revocation.FULL, (), expiries
    trail.ok(f"{name}.revocation", "not checked for " + "; ".join(unchecked))
    return (Revocation.NOT_CHECKED if checked == 0 else Revocation.PARTIAL), tuple(unchecked), expiries


def _issuer_crls(ctx: Context, issuer: Cert, crls: Sequence[CrlItem], name: str) -> tuple[Crl, list[Crl]] | None:
    """The freshest CRL ``issuer`` signed and all of them; refuses a supplied CRL older than the store's
    freshest."""
    mine = []
    for item in crls:
        crl = item.crl
        if crl.issuer_der != issuer.subject_der:
            continue
        if crl.authority_key_id is not None and issuer.subject_key_id is not None \
                and crl.authority_key_id != issuer.subject_key_id:
            continue  # another CA that shares the name (a test PKI): not this issuer's CRL
        if not ctx.signed(b"crl-signed-by", issuer, crl.sha256, lambda crl=crl: crl.signed_by(issuer)):
            raise ctx.trail.fail(f"{name}.crl-signature[{crl.name}]", f"a CRL naming {issuer.name!r} as its issuer "
                                 "is not signed by that issuer's key", "signature")
        mine.append(item)
    if not mine:
        return None
    freshest = mine[0].crl
    for item in mine[1:]:
        if item.crl.newer_than(freshest):
            freshest = item.crl
    held = [i.crl for i in mine if i.from_store]
    if held:
        best = held[0]
        for crl in held[1:]:
            if crl.newer_than(best):
                best = crl
        stale = [i.crl for i in mine if not i.from_store and best.newer_than(i.crl)]
        if stale:
            raise ctx.trail.fail(f"{name}.crl-freshness[{issuer.name}]",
                                 f"the CRL of {issuer.name!r} supplied with the evidence (thisUpdate "
                                 f"{stale[0].this_update.isoformat()}) is older than the one this verifier holds "
                                 f"(thisUpdate {best.this_update.isoformat()})", "stale-collateral",
                                 expected=f">= {best.this_update.isoformat()}",
                                 actual=stale[0].this_update.isoformat())
    return freshest, [item.crl for item in mine]


def _current(ctx: Context, crl: Crl, name: str) -> datetime:
    at = ctx.at
    where = f"{name}.crl-validity[{crl.name}]"
    if crl.next_update is None:
        raise ctx.trail.fail(where, f"the CRL of {crl.name!r} has no nextUpdate: it cannot be shown to be current",
                             "collateral")
    if at > crl.next_update:
        raise ctx.trail.fail(where, f"CRL from {crl.name!r} expired on {crl.next_update.isoformat()} (nextUpdate; "
                             f"verification time {at.isoformat()})", "expired",
                             expected=f"nextUpdate >= {at.isoformat()}", actual=crl.next_update.isoformat())
    if at < crl.this_update:
        raise ctx.trail.fail(where, f"CRL from {crl.name!r} is not valid before {crl.this_update.isoformat()} "
                             f"(verification time {at.isoformat()})", "not-yet-valid",
                             expected=f"thisUpdate <= {at.isoformat()}", actual=crl.this_update.isoformat())
    return crl.next_update
