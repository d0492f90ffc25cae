"""Appraisal: is this (already verified) claim set acceptable? Policies are rule objects, loaded from TOML.

Verification answers "is it genuine and current?"; this module only answers "do I accept it?", so it never
sees bytes, certificates or signatures — only typed :class:`~enarx.attestation.claims.Claims`.

A policy is a tree of :class:`Rule` objects (after sigstore-python's policy objects): :class:`AllOf` and
:class:`AnyOf` combine leaf rules (:class:`TeeIn`, :class:`DebugOff`, :class:`TcbStatusIn`,
:class:`RevocationChecked`, :class:`QeIdentityChecked`, :class:`DigestAllowed`, :class:`MinSvn`,
:class:`SnpVmpl`, …). Every rule is evaluated (no short-circuit) and reports :class:`~.model.Check`
results, so a rejection lists each failed rule with expected and actual values. **A rule whose fact the
evidence does not carry fails** with that reason: an SGX allow-list never accepts an SNP image, and a
policy naming a fact no TEE has does not load.

The defaults fail closed (:meth:`Policy.default`): hardware TEEs only; debug off; TCB status
``UpToDate`` (or ``NotEvaluated`` where the vendor publishes no status — stated in the verdict); chains
checked for revocation wherever the vendor publishes CRLs; Intel TCB info and QE identity present;
SEV-SNP at VMPL 0 with no migration agent. Relaxing any of these is a named entry, most of them with an
optional ``until`` date. The TOML format is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import abc
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from enarx.attestation.claims import (
    CLAIM_TYPES,
    DIGEST,
    NUMBER,
    Claims,
    SnpClaims,
    known_fact,
)
from enarx.attestation.model import AttestationError, Check, Revocation, TcbStatus, Tee
from enarx.attestation.snp.abi import TcbVersion

HARDWARE_TEES = (Tee.SNP.value, Tee.TDX.value, Tee.SGX.value, Tee.NITRO.value, Tee.NVIDIA.value)
TEE_TABLES = {"snp": Tee.SNP, "sgx": Tee.SGX, "tdx": Tee.TDX, "nitro": Tee.NITRO, "nvidia": Tee.NVIDIA}
COLLATERAL_ITEMS = ("crl", "tcb_info", "qe_identity")
INTEL = (Tee.SGX, Tee.TDX)

STATUS_REASONS = {
    TcbStatus.OUT_OF_DATE: "tcb-outofdate",
    TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED: "tcb-outofdate",
    TcbStatus.CONFIGURATION_NEEDED: "tcb-needs-config",
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: "tcb-needs-config",
    TcbStatus.SW_HARDENING_NEEDED: "tcb-sw-hardening",
    TcbStatus.REVOKED: "tcb-revoked",
    TcbStatus.NOT_SUPPORTED: "tcb-no-level",
    TcbStatus.UNKNOWN: "missing-collateral",
    TcbStatus.NOT_EVALUATED: "tcb-not-evaluated",
    TcbStatus.UP_TO_DATE: "tcb",
}
# Most specific first: the verdict's reason token is the first of these among the failed checks.
REASON_ORDER = ("debug", "tcb-revoked", "tcb-outofdate", "tcb-needs-config", "tcb-sw-hardening", "tcb-no-level",
                "missing-collateral", "tcb-not-evaluated", "revocation-unavailable", "tcb-advisory", "tee", "tcb",
                "policy")


class PolicyError(AttestationError):
    """A policy file that cannot be read or does not follow the schema."""

    reason = "policy-format"


@dataclass(frozen=True)
class Allowance:
    """An accepted value (TCB status, advisory ID, relaxation), optionally only until a date (inclusive)."""

    value: str
    until: date | None = None

    def active(self, at: datetime) -> bool:
        return self.until is None or at.astimezone(UTC).date() <= self.until

    def __str__(self) -> str:
        return self.value if self.until is None else f"{self.value} (until {self.until.isoformat()})"


def _active(allowances: tuple[Allowance, ...], value: str, at: datetime) -> tuple[Allowance | None, Allowance | None]:
    """(an active allowance for ``value``, an expired one) — either may be ``None``."""
    matching = [a for a in allowances if a.value == value]
    active = next((a for a in matching if a.active(at)), None)
    return active, (matching[0] if matching and active is None else None)


def _fail(name: str, detail: str, reason: str, *, expected: str | None = None, actual: str | None = None) -> Check:
    return Check(name, False, detail, expected=expected, actual=actual, reason=reason)


# --- rules -------------------------------------------------------------------------------------------------


class Rule(abc.ABC):
    """One condition on claims; :meth:`evaluate` returns its checks (failed ones say why)."""

    @abc.abstractmethod
    def evaluate(self, claims: Claims, at: datetime) -> list[Check]: ...


@dataclass(frozen=True)
class AllOf(Rule):
    """Every rule must hold; every rule's checks are reported."""

    rules: tuple[Rule, ...]

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        return [check for rule in self.rules for check in rule.evaluate(claims, at)]


@dataclass(frozen=True)
class AnyOf(Rule):
    """At least one alternative must hold (each alternative is usually an :class:`AllOf`)."""

    alternatives: tuple[Rule, ...]
    name: str = "policy.any_of"

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        failures = []
        for i, rule in enumerate(self.alternatives):
            checks = rule.evaluate(claims, at)
            failed = [c for c in checks if not c.passed]
            if not failed:
                return [Check(self.name, True, f"alternative {i} holds"), *checks]
            failures.append((i, failed))
        detail = "no alternative holds: " + "; ".join(
            f"[{i}] " + ", ".join(c.detail or c.name for c in failed) for i, failed in failures)
        out = [_fail(self.name, detail, "policy")]
        for i, failed in failures:
            out += [replace(c, name=f"{self.name}[{i}].{c.name.removeprefix('policy.')}") for c in failed]
        return out


@dataclass(frozen=True)
class ForTee(Rule):
    """``rule`` applies to evidence of ``tee`` only: TEE-specific settings, never a widening of acceptance
    (which TEEs are accepted at all is :class:`TeeIn`'s job)."""

    tee: Tee
    rule: Rule

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        return self.rule.evaluate(claims, at) if claims.tee is self.tee else []


@dataclass(frozen=True)
class TeeIn(Rule):
    tees: tuple[str, ...]

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        tee = claims.tee.value
        ok = tee in self.tees
        check = Check("policy.tee", ok, "TEE type accepted" if ok else "TEE type refused",
                      expected=" | ".join(self.tees), actual=tee)
        return [check if ok else replace(check, reason="tee")]


@dataclass(frozen=True)
class DebugOff(Rule):
    allowed: Allowance | None = None  # a relaxation: debug TEEs accepted (until a date)

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        if not claims.debug:
            return [Check("policy.debug", True, "not a debug TEE", expected="false", actual="false")]
        if self.allowed is not None and self.allowed.active(at):
            return [Check("policy.debug", True, f"debug allowed by policy ({self.allowed})", actual="true")]
        detail = "debug TEEs are refused" + (f" (allow_debug ended {self.allowed.until})" if self.allowed else "")
        return [_fail("policy.debug", detail, "debug", expected="false", actual="true")]


@dataclass(frozen=True)
class TcbStatusIn(Rule):
    """The TCB status is one the policy accepts. ``Unknown`` (Intel TCB info missing) passes only under an
    explicit ``tcb_info`` relaxation."""

    statuses: tuple[Allowance, ...]
    missing_tcb_info: Allowance | None = None

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        status = claims.tcb_status
        name = "policy.tcb-status"
        if status is TcbStatus.UNKNOWN:
            if self.missing_tcb_info is not None and self.missing_tcb_info.active(at):
                return [Check(name, True, f"no TCB info: status not evaluated, allowed ({self.missing_tcb_info})",
                              actual=status.value)]
            return [_fail(name, "no TCB info was supplied: the platform's TCB status is unknown "
                          "(missing collateral: TCB info)", "missing-collateral", expected="TCB info",
                          actual="missing")]
        active, expired = _active(self.statuses, status.value, at)
        if active is not None:
            return [Check(name, True, f"accepted as {active}", actual=status.value)]
        detail = (f"allowance for {status.value} expired on {expired.until}" if expired
                  else f"TCB status {status.value} not accepted")
        if status is TcbStatus.NOT_EVALUATED and isinstance(claims, SnpClaims):
            detail += f" (set [snp.min_tcb.{claims.product or 'PRODUCT'}] to evaluate it)"
        return [_fail(name, detail, STATUS_REASONS.get(status, "tcb"),
                      expected=" | ".join(str(a) for a in self.statuses if a.active(at)) or "none",
                      actual=status.value)]


@dataclass(frozen=True)
class AdvisoriesIn(Rule):
    """When the status is not ``UpToDate``, every advisory the TCB level names must be accepted."""

    allowances: tuple[Allowance, ...]

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        if claims.tcb_status is TcbStatus.UP_TO_DATE or not claims.advisory_ids:
            return []
        allowed = {a.value.upper() for a in self.allowances if a.active(at)}
        missing = [a for a in claims.advisory_ids if a.upper() not in allowed]
        check = Check("policy.advisories", not missing,
                      "every advisory accepted" if not missing else "advisories not accepted: " + ", ".join(missing),
                      expected=", ".join(sorted(allowed)) or "none", actual=", ".join(claims.advisory_ids))
        return [check if not missing else replace(check, reason="tcb-advisory")]


@dataclass(frozen=True)
class RevocationChecked(Rule):
    """Every chain link the vendor covers by CRL was checked against a current CRL.

    Where the vendor has no offline revocation source (Nitro, NVIDIA) coverage is ``not-available``:
    accepted unless ``require_available``. Unchecked or partial coverage passes only under an explicit
    ``crl`` relaxation."""

    require_available: bool = False
    missing_crl: Allowance | None = None

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        p = claims.provenance
        name = "policy.revocation"
        if p.revocation is Revocation.FULL:
            return [Check(name, True, "revocation checked along every chain", actual=p.revocation.value)]
        if p.revocation is Revocation.NOT_AVAILABLE:
            if self.require_available:
                return [_fail(name, f"revocation not available for {claims.tee.value} evidence (the vendor "
                              "publishes no offline revocation source) and require_revocation_check is set",
                              "revocation-unavailable", expected="full", actual=p.revocation.value)]
            return [Check(name, True, "revocation not available (the vendor publishes no offline revocation "
                          "source): accepted as stated", actual=p.revocation.value)]
        gaps = "; ".join(p.unchecked) or "no CRL supplied"
        if self.missing_crl is not None and self.missing_crl.active(at):
            return [Check(name, True, f"revocation {p.revocation.value} ({gaps}), allowed ({self.missing_crl})",
                          actual=p.revocation.value)]
        return [_fail(name, f"revocation not checked (missing collateral: CRL): {gaps}", "missing-collateral",
                      expected="full", actual=p.revocation.value)]


@dataclass(frozen=True)
class QeIdentityChecked(Rule):
    """The quoting enclave was checked against Intel's QE identity."""

    missing: Allowance | None = None

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        present = claims.provenance.qe_identity
        name = "policy.collateral.qe-identity"
        if present:
            return [Check(name, True, "quoting enclave matches Intel's QE identity")]
        if present is False and self.missing is not None and self.missing.active(at):
            return [Check(name, True, f"no QE identity: quoting enclave not checked, allowed ({self.missing})")]
        if present is None:
            return [_fail(name, f"{claims.tee.value} evidence has no QE identity", "policy")]
        return [_fail(name, "no QE identity was supplied: the quoting enclave was not checked (missing "
                      "collateral: QE identity)", "missing-collateral", expected="QE identity", actual="missing")]


@dataclass(frozen=True)
class DigestAllowed(Rule):
    """A digest fact is on the allow list (when there is one) and not on the deny list."""

    fact: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        actual = claims.fact(self.fact)
        if actual is None:
            return [_fail(f"policy.{self.fact}", f"{claims.tee.value} evidence has no {self.fact}", "policy",
                          expected=" | ".join(self.allow) or f"a {self.fact}", actual="absent")]
        actual = str(actual).lower()
        out = []
        if actual in self.deny:
            out.append(_fail(f"policy.{self.fact}.deny", f"{self.fact} is on the deny list", "policy",
                             expected="not " + actual, actual=actual))
        if self.allow:
            ok = actual in self.allow
            check = Check(f"policy.{self.fact}.allow", ok, f"{self.fact} {'is' if ok else 'is not'} on the allow list",
                          expected=" | ".join(self.allow), actual=actual)
            out.append(check if ok else replace(check, reason="policy"))
        elif actual not in self.deny:
            out.append(Check(f"policy.{self.fact}.deny", True, f"{self.fact} not denied", actual=actual))
        return out


@dataclass(frozen=True)
class MinSvn(Rule):
    fact: str
    minimum: int

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        actual = claims.fact(self.fact)
        name = f"policy.min_svn.{self.fact}"
        if not isinstance(actual, int):
            return [_fail(name, f"{claims.tee.value} evidence has no {self.fact}", "policy",
                          expected=f">= {self.minimum}", actual="absent")]
        ok = actual >= self.minimum
        check = Check(name, ok, f"{self.fact} >= {self.minimum}", expected=f">= {self.minimum}", actual=str(actual))
        return [check if ok else replace(check, reason="policy")]


@dataclass(frozen=True)
class SnpGuestPolicy(Rule):
    """SEV-SNP launch policy and VMPL constraints (applied to SEV-SNP evidence through :class:`ForTee`)."""

    max_vmpl: int = 0
    allow_smt: bool = True
    allow_migration_agent: Allowance | None = None  # a relaxation, optionally until a date
    require_single_socket: bool = False
    min_abi: tuple[int, int] | None = None
    max_vmpl_until: date | None = None  # a VMPL above 0 is accepted only until this date (inclusive)

    def evaluate(self, claims: Claims, at: datetime) -> list[Check]:
        if not isinstance(claims, SnpClaims):
            return [_fail("policy.snp", f"{claims.tee.value} evidence has no SEV-SNP guest policy", "policy")]
        out = []

        def add(name: str, ok: bool, detail: str, expected: str, actual: str) -> None:
            check = Check(f"policy.snp.{name}", ok, detail, expected=expected, actual=actual)
            out.append(check if ok else replace(check, reason="policy"))

        vmpl_expired = self.max_vmpl_until is not None and at.astimezone(UTC).date() > self.max_vmpl_until
        max_vmpl = 0 if vmpl_expired else self.max_vmpl
        expired_note = f" (max_vmpl = {self.max_vmpl} expired on {self.max_vmpl_until})" if vmpl_expired else ""
        add("vmpl", claims.vmpl <= max_vmpl, f"VMPL <= {max_vmpl}{expired_note}", f"<= {max_vmpl}", str(claims.vmpl))
        ma = claims.policy_flag("migrate_ma")
        relaxed = self.allow_migration_agent
        allowed = relaxed is not None and relaxed.active(at)
        expired_ma = f" (allowed until {relaxed.until}, expired)" if relaxed is not None and not allowed else ""
        add("migration_agent", allowed or not ma, f"guest policy MIGRATE_MA{expired_ma}",
            "allowed" if allowed else "not set", "set" if ma else "not set")
        smt = claims.policy_flag("smt")
        add("smt", self.allow_smt or not smt, "guest policy SMT", "allowed" if self.allow_smt else "not set",
            "set" if smt else "not set")
        if self.require_single_socket:
            single = claims.policy_flag("single_socket")
            add("single_socket", single, "single-socket guest policy", "set", "set" if single else "not set")
        if self.min_abi is not None:
            add("min_abi", claims.abi >= self.min_abi, "guest policy minimum ABI", ">= {}.{}".format(*self.min_abi),
                "{}.{}".format(*claims.abi))
        return out


# --- the policy: rules plus the SEV-SNP TCB references --------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The settings that apply to one TEE's evidence (top level, overridden by its ``[tee]`` table)."""

    allow_debug: Allowance | None = None
    tcb_statuses: tuple[Allowance, ...] = (Allowance(TcbStatus.UP_TO_DATE.value),
                                           Allowance(TcbStatus.NOT_EVALUATED.value))
    advisories: tuple[Allowance, ...] = ()
    require_revocation_check: bool = False
    allow_missing_collateral: tuple[Allowance, ...] = ()

    def missing(self, item: str) -> Allowance | None:
        return next((a for a in self.allow_missing_collateral if a.value == item), None)

    def rules(self, tee: Tee, snp: SnpGuestPolicy) -> Rule:
        rules: list[Rule] = [
            DebugOff(self.allow_debug),
            TcbStatusIn(self.tcb_statuses, self.missing("tcb_info")),
            AdvisoriesIn(self.advisories),
            RevocationChecked(self.require_revocation_check, self.missing("crl")),
        ]
        if tee in INTEL:
            rules.append(QeIdentityChecked(self.missing("qe_identity")))
        if tee is Tee.SNP:
            rules.append(snp)
        return AllOf(tuple(rules))


@dataclass(frozen=True)
class Policy:
    """A rule tree plus SEV-SNP TCB references (``min_tcb`` per product)."""

    rule: Rule = field(default_factory=lambda: _build({}, "default"))
    min_tcb: Mapping[str, TcbVersion] = field(default_factory=dict)
    source: str = "default"

    @classmethod
    def default(cls) -> Policy:
        """The fail-closed defaults (see the module docstring and docs/policy.md)."""
        return cls.from_dict({}, "default")

    @classmethod
    def from_toml(cls, text: str, source: str = "policy") -> Policy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read policy: {exc}") from None
        return cls.from_toml(text, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "policy") -> Policy:
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: a policy is a table")
        snp = data.get("snp", {})
        min_tcb = _min_tcb(snp.get("min_tcb", {}), f"{source}: [snp.min_tcb]") if isinstance(snp, dict) else {}
        return cls(_build(data, source), min_tcb, source)

    # -- appraisal ------------------------------------------------------------------------------------
    def evaluate_tcb(self, claims: Claims) -> Claims:
        """SEV-SNP: the status against this policy's ``min_tcb`` for the product, when it has one — also when
        another policy (the verifier's) already judged it: each policy applies its own minimum."""
        if not isinstance(claims, SnpClaims):
            return claims
        minimum = self.min_tcb.get(claims.product or "")
        if minimum is None or claims.tcb_status not in _SNP_TCB_EVALUABLE:
            return claims
        have, need = claims.reported_tcb.components(), minimum.components()
        ok = all(have.get(k, -1) >= v for k, v in need.items())
        return replace(claims, tcb_status=TcbStatus.UP_TO_DATE if ok else TcbStatus.OUT_OF_DATE)

    def appraise(self, claims: Claims, at: datetime | None = None) -> list[Check]:
        """Evaluate every rule (after this policy's own ``min_tcb``); a failed :class:`Check` per violated rule
        (``passed=False``). A second policy — a package's, a repository's — appraising claims another verifier
        produced thus still enforces its minimum TCB."""
        return self.rule.evaluate(self.evaluate_tcb(claims), at or datetime.now(UTC))


#: SEV-SNP statuses a ``min_tcb`` decides (AMD publishes none): never one a vendor's own service gave.
_SNP_TCB_EVALUABLE = (TcbStatus.NOT_EVALUATED, TcbStatus.UP_TO_DATE, TcbStatus.OUT_OF_DATE)


def rejection_reason(failed: list[Check]) -> str:
    """The reason token for a list of failed policy checks (most specific first)."""
    reasons = {c.reason or "policy" for c in failed}
    return next((r for r in REASON_ORDER if r in reasons), "policy")


# --- TOML → rules ------------------------------------------------------------------------------------------

_SETTINGS_KEYS = {"allow_debug", "tcb_statuses", "advisories", "require_tcb_info", "require_revocation_check",
                  "allow_missing_collateral"}
_SNP_KEYS = {"allow_smt", "allow_migration_agent", "max_vmpl", "min_abi", "require_single_socket", "min_tcb"}
_FACT_KEYS = {"tees", "measurements", "signers", "min_svn", "any_of"}


def _build(data: dict[str, Any], source: str) -> Rule:
    _no_unknown(data, _SETTINGS_KEYS | _FACT_KEYS | set(TEE_TABLES), source)
    tees = _tees(data.get("tees", list(HARDWARE_TEES)), f"{source}: tees")
    top = _settings(data, Settings(), source, None)
    rules: list[Rule] = [TeeIn(tees)]
    for table, tee in TEE_TABLES.items():
        section = data.get(table, {})
        where = f"{source}: [{table}]"
        if not isinstance(section, dict):
            raise PolicyError(f"{where} must be a table")
        _no_unknown(section, _SETTINGS_KEYS | (_SNP_KEYS if tee is Tee.SNP else set()), where)
        settings = _settings(section, top, where, tee)
        rules.append(ForTee(tee, settings.rules(tee, _snp_rules(section, where) if tee is Tee.SNP
                                                 else SnpGuestPolicy())))
    rules += _fact_rules(data, source, tees)
    return AllOf(tuple(rules))


def _fact_rules(data: dict[str, Any], source: str, tees: tuple[str, ...]) -> list[Rule]:
    rules: list[Rule] = []
    for section, kind in (("measurements", DIGEST), ("signers", DIGEST)):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise PolicyError(f"{source}: [{section}] must be a table")
        for name, rule in table.items():
            where = f"{source}: [{section}.{name}]"
            _known(name, kind, where, tees)
            if not isinstance(rule, dict):
                raise PolicyError(f"{where} must be a table with allow/deny lists")
            _no_unknown(rule, {"allow", "deny"}, where)
            allow = tuple(_hex(v, f"{where} allow") for v in _str_list(rule.get("allow", []), where))
            deny = tuple(_hex(v, f"{where} deny") for v in _str_list(rule.get("deny", []), where))
            both = set(allow) & set(deny)
            if both:
                raise PolicyError(f"{where}: {min(both)} is both allowed and denied")
            rules.append(DigestAllowed(name, allow, deny))
    table = data.get("min_svn", {})
    if not isinstance(table, dict):
        raise PolicyError(f"{source}: [min_svn] must be a table")
    for name, value in table.items():
        where = f"{source}: min_svn.{name}"
        _known(name, NUMBER, where, tees)
        rules.append(MinSvn(name, _int(value, where)))
    branches = data.get("any_of", [])
    if not isinstance(branches, list) or not all(isinstance(b, dict) for b in branches):
        raise PolicyError(f"{source}: any_of must be an array of tables ([[any_of]])")
    alternatives = []
    for i, branch in enumerate(branches):
        where = f"{source}: any_of[{i}]"
        _no_unknown(branch, _FACT_KEYS, where)
        branch_tees = _tees(branch["tees"], f"{where} tees") if "tees" in branch else tees
        inner: list[Rule] = [TeeIn(branch_tees)] if "tees" in branch else []
        inner += _fact_rules(branch, where, branch_tees)
        if not inner:
            raise PolicyError(f"{where} is empty: it would accept anything")
        alternatives.append(AllOf(tuple(inner)))
    if alternatives:
        rules.append(AnyOf(tuple(alternatives)))
    return rules


def _known(name: str, kind: str, where: str, tees: tuple[str, ...]) -> None:
    """A fact name must exist, be of the right kind, and belong to a TEE the policy can accept."""
    found = known_fact(name)
    if found is None:
        raise PolicyError(f"{where}: no TEE has a claim named {name!r} (a typo?)")
    if found != kind:
        raise PolicyError(f"{where}: {name!r} is {'a digest' if found == DIGEST else 'a number'}, not "
                          f"{'a digest' if kind == DIGEST else 'a number'}")
    if not any(CLAIM_TYPES[Tee(t)].fact_kind(name) for t in tees):
        raise PolicyError(f"{where}: none of the accepted TEEs ({', '.join(tees)}) has {name!r}: this rule "
                          "would refuse everything")


def _settings(table: dict[str, Any], base: Settings, where: str, tee: Tee | None) -> Settings:
    kw: dict[str, Any] = {}
    if "allow_debug" in table:
        kw["allow_debug"] = _relaxation(table["allow_debug"], "debug", f"{where} allow_debug")
    if "tcb_statuses" in table:
        valid = {s.value for s in TcbStatus} - {TcbStatus.UNKNOWN.value}
        allowances = _allowances(table["tcb_statuses"], "status", f"{where} tcb_statuses")
        for a in allowances:
            if a.value not in valid:
                raise PolicyError(f"{where} tcb_statuses: unknown status {a.value!r} (known: {', '.join(sorted(valid))};"
                                  " a missing TCB info is relaxed with allow_missing_collateral)")
        kw["tcb_statuses"] = allowances
    if "advisories" in table:
        kw["advisories"] = _allowances(table["advisories"], "id", f"{where} advisories")
    if "require_revocation_check" in table:
        kw["require_revocation_check"] = _bool(table["require_revocation_check"], f"{where} require_revocation_check")
    missing = list(base.allow_missing_collateral)
    if "allow_missing_collateral" in table:
        missing = list(_allowances(table["allow_missing_collateral"], "item", f"{where} allow_missing_collateral"))
        for a in missing:
            if a.value not in COLLATERAL_ITEMS:
                raise PolicyError(f"{where} allow_missing_collateral: unknown item {a.value!r} "
                                  f"(known: {', '.join(COLLATERAL_ITEMS)})")
            if tee is not None and tee not in INTEL and a.value != "crl":
                raise PolicyError(f"{where} allow_missing_collateral: {tee.value} evidence has no {a.value}")
    if "require_tcb_info" in table:  # the old key: true is the default now, false relaxes it
        if tee is not None and tee not in INTEL:
            raise PolicyError(f"{where} require_tcb_info: {tee.value} evidence has no TCB info")
        required = _bool(table["require_tcb_info"], f"{where} require_tcb_info")
        missing = [a for a in missing if a.value != "tcb_info"] + ([] if required else [Allowance("tcb_info")])
    kw["allow_missing_collateral"] = tuple(missing)
    return replace(base, **kw)


def _snp_rules(table: dict[str, Any], where: str) -> SnpGuestPolicy:
    kw: dict[str, Any] = {}
    for key in ("allow_smt", "require_single_socket"):
        if key in table:
            kw[key] = _bool(table[key], f"{where} {key}")
    if "allow_migration_agent" in table:
        kw["allow_migration_agent"] = _relaxation(table["allow_migration_agent"], "migration agent",
                                                  f"{where} allow_migration_agent")
    if "max_vmpl" in table:
        value, where_vmpl = table["max_vmpl"], f"{where} max_vmpl"
        if isinstance(value, dict):  # { value = N, until = DATE }: a relaxation that expires
            _no_unknown(value, {"value", "until"}, where_vmpl)
            if "value" not in value or "until" not in value:
                raise PolicyError(f"{where_vmpl}: a table needs value = 0..3 and until = DATE")
            kw["max_vmpl_until"] = _date(value["until"], where_vmpl)
            value = value["value"]
        vmpl = _int(value, where_vmpl)
        if not 0 <= vmpl <= 3:
            raise PolicyError(f"{where} max_vmpl must be 0..3")
        kw["max_vmpl"] = vmpl
    if "min_abi" in table:
        kw["min_abi"] = _abi(table["min_abi"], f"{where} min_abi")
    return SnpGuestPolicy(**kw)


def _min_tcb(table: Any, where: str) -> dict[str, TcbVersion]:
    """``[snp.min_tcb.Milan]`` tables: bootloader, tee, snp, microcode (and fmc on Turin)."""
    if not isinstance(table, dict):
        raise PolicyError(f"{where} must be a table of products")
    out = {}
    for product, values in table.items():
        here = f"{where}.{product}"
        if product not in ("Milan", "Genoa", "Turin"):
            raise PolicyError(f"{here}: unknown product (Milan, Genoa, Turin)")
        if not isinstance(values, dict):
            raise PolicyError(f"{here} must be a table")
        needed = {"bootloader", "tee", "snp", "microcode"} | ({"fmc"} if product == "Turin" else set())
        _no_unknown(values, needed, here)
        absent = sorted(needed - set(values))
        if absent:
            raise PolicyError(f"{here}: missing {', '.join(absent)} (every component must be given)")
        comps = {k: _int(values[k], f"{here} {k}") for k in needed}
        if any(v > 255 for v in comps.values()):
            raise PolicyError(f"{here}: TCB components are 0..255")
        out[product] = TcbVersion(**comps)
    return out


# --- TOML value helpers ------------------------------------------------------------------------------------


def _no_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _tees(value: Any, where: str) -> tuple[str, ...]:
    tees = _str_list(value, where)
    valid = {t.value for t in Tee}
    for tee in tees:
        if tee not in valid:
            raise PolicyError(f"{where}: unknown TEE {tee!r} (known: {', '.join(sorted(valid))})")
    if Tee.KVM.value in tees:
        raise PolicyError(f"{where}: kvm keeps have no evidence to appraise (the Steward's --insecure-accept-kvm)")
    return tuple(tees)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where} must be true or false")
    return value


def _relaxation(value: Any, name: str, where: str) -> Allowance | None:
    """``true``/``false`` or ``{ until = DATE }``."""
    if isinstance(value, bool):
        return Allowance(name) if value else None
    if isinstance(value, dict):
        _no_unknown(value, {"until"}, where)
        if "until" not in value:
            raise PolicyError(f"{where}: a table needs until = DATE")
        return Allowance(name, _date(value["until"], where))
    raise PolicyError(f"{where} must be true, false or {{ until = DATE }}")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"{where} must be a non-negative integer")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where} must be a list of strings")
    return value


def _hex(value: str, where: str) -> str:
    text = value.strip().lower()
    if not text or len(text) % 2 or any(c not in "0123456789abcdef" for c in text):
        raise PolicyError(f"{where}: {value!r} is not a hex digest")
    return text


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PolicyError(f"{where}: until must be a date (YYYY-MM-DD)")


def _allowances(value: Any, key: str, where: str) -> tuple[Allowance, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(Allowance(item))
        elif isinstance(item, dict):
            _no_unknown(item, {key, "until"}, where)
            if not isinstance(item.get(key), str):
                raise PolicyError(f"{where}: each table needs a string {key!r}")
            until = _date(item["until"], where) if "until" in item else None
            out.append(Allowance(item[key], until))
        else:
            raise PolicyError(f"{where}: entries must be strings or {{ {key} = …, until = … }} tables")
    return tuple(out)


def _abi(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, str):
        parts = value.split(".")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    raise PolicyError(f"{where} must be \"MAJOR.MINOR\"")


__all__ = [
    "AdvisoriesIn", "AllOf", "Allowance", "AnyOf", "DebugOff", "DigestAllowed", "ForTee", "MinSvn",
    "Policy", "PolicyError", "QeIdentityChecked", "RevocationChecked", "Rule", "Settings", "SnpGuestPolicy",
    "TcbStatusIn", "TeeIn", "rejection_reason",
]
