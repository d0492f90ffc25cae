"""The Steward's decision: CSR → verified claims → certificate, or a typed :class:`Refusal`.

HTTP statuses: 400 undecodable request / bad CSR signature / unknown OID / wrong key type,
401 no attesting extension, 403 evidence not genuine, not current, refused by policy or not bound to
the CSR key (and KVM/nil without ``--insecure-accept-kvm``). Every refusal names the failed checks.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enarx.attestation import roots
from enarx.attestation.anchors import Anchor, bind_test_anchor, split_spec
from enarx.attestation.binding import binding_check
from enarx.attestation.claims import Claims, SnpClaims
from enarx.attestation.collateral import from_ders
from enarx.attestation.formats import FORMAT_FOR_TEE
from enarx.attestation.freshness import ChallengeIssuer, FreshnessError, require_fresh
from enarx.attestation.model import AttestationError, Check, TcbStatus, Tee
from enarx.attestation.pki import Cert, split_pem
from enarx.attestation.policy import Policy
from enarx.attestation.store import CollateralStore
from enarx.attestation.verifier import Verifier
from enarx.steward.csr import CertReqs, CsrError, DecodedCsr, Evidence, _load, decode_csr, decode_request
from enarx.steward.issuer import DEFAULT_VALIDITY, CertificateAuthority

log = logging.getLogger("enarx.steward")

KEY_FOR_TEE = {Tee.SNP: "P-384", Tee.SGX: "P-256", Tee.TDX: "P-256"}
MAX_BUNDLE = 16


@dataclass
class Refusal(Exception):
    """A decision to refuse: HTTP status, stable reason token, human detail and the failed checks."""

    status: int
    reason: str
    detail: str
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tee: str | None = None
    index: int | None = None  # position in a bundle

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.detail}"


@dataclass
class Issued:
    """A successful decision."""

    cert: x509.Certificate
    claims: dict[str, Any]
    spki_sha256: str
    warnings: list[str]

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _refusal(exc: CsrError) -> Refusal:
    return Refusal(exc.status, exc.reason, str(exc), [Check(f"csr.{exc.reason}", False, str(exc))])


def load_insecure_anchors(paths: list[str | Path]) -> tuple[list[Anchor], list[bytes]]:
    """Self-signed certificates in ``paths`` become test anchors, each bound to the formats its name and key
    fit (or to those named as ``FORMATS=FILE``, see :mod:`enarx.attestation.anchors`); the others (e.g. a
    test ASK) only help build chains. Returns (anchors, intermediate DERs)."""
    anchors: list[Anchor] = []
    intermediates: list[bytes] = []
    for spec in paths:
        formats, path = split_spec(str(spec))
        data = Path(path).read_bytes()
        ders = [d for label, d in split_pem(data) if label == "CERTIFICATE"] if b"-----BEGIN" in data else [data]
        for der in ders:
            cert = Cert.from_der(der)
            if cert.self_issued and cert.signed_by(cert):
                anchors.append(bind_test_anchor(cert, formats))
            else:
                intermediates.append(cert.der)
    return anchors, intermediates


def builtin_intermediates() -> list[bytes]:
    """AMD ASK/ASVK per product: Enarx keeps send only the VCEK."""
    out = []
    for product in roots.PRODUCTS:
        for getter in (roots.ask, roots.asvk):
            try:
                out.append(getter(product).der)
            except Exception:  # noqa: BLE001, S112 - a product without that intermediate
                continue
    return out


@dataclass
class StewardConfig:
    ca: CertificateAuthority
    policy: Policy = field(default_factory=Policy.default)
    policy_name: str = "default"
    validity: timedelta = DEFAULT_VALIDITY
    sans: list[str] = field(default_factory=list)
    verify_at: datetime | None = None
    accept_kvm: bool = False
    insecure_anchors: list[Anchor] = field(default_factory=list)
    insecure_intermediates: list[bytes] = field(default_factory=list)
    require_challenge: bool = False  # refuse evidence that binds no fresh GET /challenge nonce
    challenges: ChallengeIssuer = field(default_factory=ChallengeIssuer.generate)
    # --collateral: the Steward's own store (paths, or a store the CLI loaded and checked at start-up)
    collateral: list[str | Path] | CollateralStore = field(default_factory=list)


class Steward:
    """Thread-safe: one instance answers every request."""

    def __init__(self, config: StewardConfig):
        self.config = config
        # The Steward's own collateral: AMD's ASK/ASVK (keeps send only the VCEK), the test intermediates
        # given with --insecure-trust-anchor, and every --collateral directory or bundle.
        store = config.collateral if isinstance(config.collateral, CollateralStore) else \
            CollateralStore.load(config.collateral)
        self.verifier = self._verifier(store)
        self._store = store  # the operator's collateral as loaded (without the built-in intermediates)
        self._reload_lock = threading.Lock()

    def _verifier(self, store: CollateralStore) -> Verifier:
        held = from_ders([*builtin_intermediates(), *self.config.insecure_intermediates], source="steward")
        return Verifier(anchors=roots.builtin_anchors(self.config.insecure_anchors), policy=self.config.policy,
                        collateral=store.extended(held))

    def reload_collateral(self) -> bool:
        """Read the ``--collateral`` paths again (on SIGHUP), so renewed CRLs and TCB info take effect without
        a restart. All or nothing: a file that does not load leaves the current collateral in place (it is
        still checked for expiry on every request) and is logged. Requests in flight finish on the verifier
        they started with."""
        with self._reload_lock:
            try:
                store = CollateralStore.load(self._collateral_sources())
                if store.warnings:  # e.g. a truncated download: do not drop what it replaces
                    raise AttestationError("; ".join(store.warnings))
                rollbacks = self._store.rollbacks(store)
                if rollbacks:  # a replayed download or a restored backup: never lower the freshness reference
                    raise AttestationError("; ".join(rollbacks))
                verifier = self._verifier(store)
            except (AttestationError, OSError) as exc:
                log.error("collateral reload failed, keeping the current collateral: %s", exc)
                return False
            self.verifier, self._store = verifier, store
            log.info("collateral reloaded: %s", store.describe())
            return True

    def _collateral_sources(self) -> list[str | Path]:
        given = self.config.collateral
        return list(given.sources) if isinstance(given, CollateralStore) else list(given)

    def now(self) -> datetime:
        return self.config.verify_at or datetime.now(UTC)

    # -- single CSR ---------------------------------------------------------------------------------
    def attest(self, body: bytes) -> Issued:
        """Decide on one DER CSR; raises :class:`Refusal`."""
        try:
            csr = decode_csr(body)
        except CsrError as exc:
            raise _refusal(exc) from None
        return self._decide(csr)

    def attest_bundle(self, body: bytes) -> list[Issued]:
        """Decide on a ``SEQUENCE OF CertificationRequest``; all must pass (the refusal names the index)."""
        try:
            reqs = _load(CertReqs, body, "CSR bundle", "malformed-csr")
        except CsrError as exc:
            raise Refusal(400, "malformed-csr", str(exc)) from None
        if not 1 <= len(reqs) <= MAX_BUNDLE:
            raise Refusal(400, "malformed-csr", f"a bundle holds 1 to {MAX_BUNDLE} CSRs, not {len(reqs)}")
        out = []
        for i, req in enumerate(reqs):
            try:
                try:
                    csr = decode_request(req)
                except CsrError as exc:
                    raise _refusal(exc) from None
                out.append(self._decide(csr))
            except Refusal as refusal:
                refusal.index = i
                refusal.detail = f"CSR #{i}: {refusal.detail}"
                raise
        return out

    # -- the decision -------------------------------------------------------------------------------
    def _decide(self, csr: DecodedCsr) -> Issued:
        if not csr.evidence:
            raise Refusal(401, "no-evidence", "the CSR carries no attesting extension")
        if len(csr.evidence) > 1:
            raise Refusal(400, "malformed-csr", "the CSR carries more than one attesting extension")
        ev = csr.evidence[0]
        self._check_fresh(csr, ev)
        at = self.now()
        if ev.tee is Tee.KVM:
            return self._kvm(csr, ev, at)
        expected_key = KEY_FOR_TEE[ev.tee]
        if csr.key_kind() != expected_key:
            raise Refusal(400, "key-type", f"{ev.tee.value} evidence requires a {expected_key} CSR key, "
                          f"not {csr.key_kind()}", [Check("csr.key-type", False, "", expected_key, csr.key_kind())],
                          tee=ev.tee.value)
        # the format is pinned by the extension OID: a TDX quote in the SGX extension is refused ("format")
        verdict = self.verifier.verify(ev.evidence, ev.collateral, at=at, format=FORMAT_FOR_TEE[ev.tee])
        checks = list(verdict.checks)
        claims = verdict.claims
        if claims is not None:
            checks.append(binding_check(claims, csr.spki_der, csr.nonce))
        failed = [c for c in checks if not c.passed]
        if verdict.status != "trusted" or failed:
            reason = verdict.reason if verdict.status != "trusted" else "binding"
            detail = "; ".join(c.detail or c.name for c in failed if c.name != "verify") or verdict.reason
            what = "not genuine or not current" if verdict.status == "failed" else "refused"
            raise Refusal(403, reason, f"{ev.tee.value} evidence {what}: {detail}", failed, verdict.warnings,
                          tee=ev.tee.value)
        assert claims is not None
        not_after = self.config.ca.not_after_for(at, self.config.validity, claims.collateral_expiry)
        if not_after <= at:
            raise Refusal(403, "collateral-expired", "collateral expires before a certificate could be valid",
                          tee=ev.tee.value)
        document = _declared(self._claims(claims, at, claims.provenance.test_anchor), csr)
        cert = self.config.ca.issue(csr.public_key, at=at, not_after=not_after, claims=document,
                                    sans=self.config.sans)
        return Issued(cert, document, csr.spki_sha256, verdict.warnings)

    def _check_fresh(self, csr: DecodedCsr, ev: Evidence) -> None:
        """A nonce the CSR carries must be ours and unexpired (by the wall clock, even with ``verify_at``);
        none is accepted unless the Steward requires challenges. The binding itself is checked with the key."""
        try:
            require_fresh(self.config.challenges, csr.nonce, self.config.require_challenge)
        except FreshnessError as exc:
            raise Refusal(403, exc.reason, str(exc), [Check("steward.challenge", False, str(exc))],
                          tee=ev.tee.value) from None

    def _kvm(self, csr: DecodedCsr, ev: Evidence, at: datetime) -> Issued:
        if not self.config.accept_kvm:
            raise Refusal(403, "kvm-refused", "KVM/nil keeps have no hardware attestation; the Steward was not "
                          "started with --insecure-accept-kvm",
                          [Check("steward.insecure-accept-kvm", False, "KVM/nil evidence refused", "set", "unset")],
                          tee=Tee.KVM.value)
        document = _declared(self._document(Tee.KVM, at, insecure=True, test_anchor=False), csr)
        not_after = self.config.ca.not_after_for(at, self.config.validity, None)
        cert = self.config.ca.issue(csr.public_key, at=at, not_after=not_after, claims=document,
                                    sans=self.config.sans, copy_extensions=[(ev.oid, b"")])
        return Issued(cert, document, csr.spki_sha256, ["KVM/nil keep certified: no hardware attestation"])

    def _claims(self, claims: Claims, at: datetime, insecure: bool) -> dict[str, Any]:
        document = self._document(
            claims.tee, at, insecure=insecure, test_anchor=claims.provenance.test_anchor,
            measurements=claims.measurements, signer=claims.signer, svns=claims.svns,
            tcb_status=claims.tcb_status, advisory_ids=list(claims.advisory_ids), debug=claims.debug,
            collateral_expiry=claims.collateral_expiry)
        # what a relying party's policy needs to appraise the certificate's claims again (see
        # enarx.attestation.claims.claims_from_json): the provenance, and SEV-SNP's guest policy facts
        document["trust"] = claims.provenance.to_json()
        if isinstance(claims, SnpClaims):
            document["platform"] = {"vmpl": claims.vmpl, "policy": claims.policy, "abi": "{}.{}".format(*claims.abi),
                                    "product": claims.product}
        return document

    def _document(self, tee: Tee, at: datetime, *, insecure: bool, test_anchor: bool,
                  measurements: dict[str, str] | None = None, signer: dict[str, str] | None = None,
                  svns: dict[str, int] | None = None, tcb_status: TcbStatus = TcbStatus.UNKNOWN,
                  advisory_ids: list[str] | None = None, debug: bool = False,
                  collateral_expiry: datetime | None = None) -> dict[str, Any]:
        """The claims document put in an issued certificate (read back by ``issuer.read_claims``)."""
        return {
            "version": 1,
            "tee": tee.value,
            "measurements": dict(measurements or {}),
            "signer": dict(signer or {}),
            "svns": dict(svns or {}),
            "tcb_status": tcb_status.value,
            "advisory_ids": list(advisory_ids or []),
            "debug": debug,
            "policy": self.config.policy_name,
            "verified_at": at.isoformat(),
            "collateral_expiry": collateral_expiry.isoformat() if collateral_expiry else None,
            "test_anchor": test_anchor,
            "insecure": insecure,
        }


def _declared(document: dict[str, Any], csr: DecodedCsr) -> dict[str, Any]:
    """A keep's own statement that it is not isolated (nil: a process; kvm under TCG: emulated) goes into its
    claims as ``isolation`` and makes the certificate insecure whatever its evidence: nothing can verify it,
    so it is taken only as the downgrade it is."""
    if csr.isolation is not None:
        document["isolation"] = csr.isolation
        document["insecure"] = True
    return document
