"""Appraisal: is this (already verified) claim set acceptable? Policies are objects, loaded from TOML.

Verification answers "is it genuine and current?"; this module only answers "do I accept it?", so
it never sees bytes, certificates or signatures — only :class:`~enarx.attestation.model.Claims`.
Every rule is evaluated (no short-circuit), so a rejection lists each failed rule by name with the
expected and actual values.

TOML schema (every key optional; the defaults form :meth:`Policy.default`, which is safe)::

    allow_debug = false                 # debug TEEs (SNP policy DEBUG, SGX DEBUG attribute, TD DEBUG)
    tees = ["sev-snp", "tdx", "sgx"]    # accepted TEE types (default: every hardware TEE)
    tcb_statuses = ["UpToDate", { status = "SWHardeningNeeded", until = 2026-06-30 }]
    advisories = [{ id = "INTEL-SA-00615", until = 2026-06-30 }]   # needed when status ≠ UpToDate
    require_tcb_info = false            # true: "Unknown" (no TCB collateral supplied) is rejected
    require_revocation_check = false    # true: a chain whose CRLs were not supplied is rejected

    [measurements.measurement]          # any claim in Claims.measurements or Claims.signer:
    allow = ["<hex>"]                   # measurement, host_data, mrenclave, mrsigner, mrtd, rtmr0-3,
    deny = ["<hex>"]                    # id_key_digest, author_key_digest, …  ([signers.x] = alias)

    [min_svn]                           # any claim in Claims.svns: guest_svn, bootloader, tee, snp,
    microcode = 209                     # microcode, fmc, isv_svn, pce_svn, qe_svn, …

    [snp]
    allow_smt = true
    allow_migration_agent = false
    max_vmpl = 0                        # default: any VMPL
    min_abi = "1.51"
    require_single_socket = false

``until`` dates are inclusive and compared with the verification time, so an allowance granted for a
TCB-recovery window stops working by itself.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from enarx.attestation.model import AttestationError, Check, Claims, TcbStatus, Tee

HARDWARE_TEES = (Tee.SNP.value, Tee.TDX.value, Tee.SGX.value, Tee.NITRO.value, Tee.NVIDIA.value)

STATUS_REASONS = {
    TcbStatus.OUT_OF_DATE: "tcb-outofdate",
    TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED: "tcb-outofdate",
    TcbStatus.CONFIGURATION_NEEDED: "tcb-needs-config",
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: "tcb-needs-config",
    TcbStatus.SW_HARDENING_NEEDED: "tcb-sw-hardening",
    TcbStatus.REVOKED: "tcb-revoked",
    TcbStatus.NOT_SUPPORTED: "tcb-no-level",
    TcbStatus.UNKNOWN: "tcb-unknown",
    TcbStatus.UP_TO_DATE: "tcb",
}


class PolicyError(AttestationError):
    """A policy file that cannot be read or does not follow the schema."""

    reason = "policy-format"


@dataclass(frozen=True)
class Allowance:
    """An accepted value (TCB status, advisory ID), optionally only until a date (inclusive)."""

    value: str
    until: date | None = None

    def active(self, at: datetime) -> bool:
        return self.until is None or at.astimezone(UTC).date() <= self.until

    def __str__(self) -> str:
        return self.value if self.until is None else f"{self.value} (until {self.until.isoformat()})"


@dataclass(frozen=True)
class DigestRule:
    """Allow/deny lists of lowercase hex digests. An empty allow list allows anything not denied."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnpRules:
    allow_smt: bool = True
    allow_migration_agent: bool = False
    max_vmpl: int | None = None
    min_abi: tuple[int, int] | None = None
    require_single_socket: bool = False


@dataclass(frozen=True)
class Policy:
    allow_debug: bool = False
    tees: tuple[str, ...] = HARDWARE_TEES
    tcb_statuses: tuple[Allowance, ...] = (Allowance(TcbStatus.UP_TO_DATE.value),)
    advisories: tuple[Allowance, ...] = ()
    require_tcb_info: bool = False
    require_revocation_check: bool = False
    digests: dict[str, DigestRule] = field(default_factory=dict)
    min_svn: dict[str, int] = field(default_factory=dict)
    snp: SnpRules = SnpRules()

    @classmethod
    def default(cls) -> Policy:
        """Debug refused, only ``UpToDate`` TCBs, no migration agent, hardware TEEs only."""
        return cls()

    # -- loading ----------------------------------------------------------------------------------
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
        known = {"allow_debug", "tees", "tcb_statuses", "advisories", "require_tcb_info",
                 "require_revocation_check", "measurements", "signers", "min_svn", "snp"}
        _no_unknown(data, known, source)
        kw: dict[str, Any] = {}
        for key in ("allow_debug", "require_tcb_info", "require_revocation_check"):
            if key in data:
                kw[key] = _bool(data[key], f"{source}: {key}")
        if "tees" in data:
            tees = _str_list(data["tees"], f"{source}: tees")
            valid = {t.value for t in Tee}
            for tee in tees:
                if tee not in valid:
                    raise PolicyError(f"{source}: tees: unknown TEE {tee!r} (known: {', '.join(sorted(valid))})")
            kw["tees"] = tuple(tees)
        if "tcb_statuses" in data:
            valid = {s.value for s in TcbStatus}
            allowances = _allowances(data["tcb_statuses"], "status", f"{source}: tcb_statuses")
            for a in allowances:
                if a.value not in valid:
                    raise PolicyError(f"{source}: tcb_statuses: unknown status {a.value!r} "
                                      f"(known: {', '.join(sorted(valid))})")
            kw["tcb_statuses"] = allowances
        if "advisories" in data:
            kw["advisories"] = _allowances(data["advisories"], "id", f"{source}: advisories")
        digests: dict[str, DigestRule] = {}
        for section in ("measurements", "signers"):
            table = data.get(section, {})
            if not isinstance(table, dict):
                raise PolicyError(f"{source}: [{section}] must be a table")
            for name, rule in table.items():
                where = f"{source}: [{section}.{name}]"
                if not isinstance(rule, dict):
                    raise PolicyError(f"{where} must be a table with allow/deny lists")
                _no_unknown(rule, {"allow", "deny"}, where)
                allow = tuple(_hex(v, f"{where} allow") for v in _str_list(rule.get("allow", []), where))
                deny = tuple(_hex(v, f"{where} deny") for v in _str_list(rule.get("deny", []), where))
                both = set(allow) & set(deny)
                if both:
                    raise PolicyError(f"{where}: {min(both)} is both allowed and denied")
                digests[name] = DigestRule(allow, deny)
        kw["digests"] = digests
        if "min_svn" in data:
            table = data["min_svn"]
            if not isinstance(table, dict):
                raise PolicyError(f"{source}: [min_svn] must be a table")
            kw["min_svn"] = {k: _int(v, f"{source}: min_svn.{k}") for k, v in table.items()}
        if "snp" in data:
            table = data["snp"]
            where = f"{source}: [snp]"
            if not isinstance(table, dict):
                raise PolicyError(f"{where} must be a table")
            _no_unknown(table, {"allow_smt", "allow_migration_agent", "max_vmpl", "min_abi",
                                "require_single_socket"}, where)
            snp_kw: dict[str, Any] = {}
            for key in ("allow_smt", "allow_migration_agent", "require_single_socket"):
                if key in table:
                    snp_kw[key] = _bool(table[key], f"{where} {key}")
            if "max_vmpl" in table:
                vmpl = _int(table["max_vmpl"], f"{where} max_vmpl")
                if not 0 <= vmpl <= 3:
                    raise PolicyError(f"{where} max_vmpl must be 0..3")
                snp_kw["max_vmpl"] = vmpl
            if "min_abi" in table:
                snp_kw["min_abi"] = _abi(table["min_abi"], f"{where} min_abi")
            kw["snp"] = SnpRules(**snp_kw)
        return cls(**kw)

    # -- appraisal --------------------------------------------------------------------------------
    def appraise(self, claims: Claims, at: datetime | None = None) -> list[Check]:
        """Evaluate every rule; a failed :class:`Check` per violated rule (``passed=False``)."""
        at = at or datetime.now(UTC)
        checks: list[Check] = []
        add = checks.append

        tee = claims.tee.value
        add(Check("policy.tee", tee in self.tees, "TEE type accepted" if tee in self.tees else "TEE type refused",
                  expected=" | ".join(self.tees), actual=tee))

        add(Check("policy.debug", self.allow_debug or not claims.debug,
                  "debug allowed by policy" if self.allow_debug else "debug TEEs are refused",
                  expected="any" if self.allow_debug else "false", actual=str(claims.debug).lower()))

        status = claims.tcb_status
        accepted = [a for a in self.tcb_statuses if a.value == status.value]
        active = [a for a in accepted if a.active(at)]
        if status is TcbStatus.UNKNOWN and not self.require_tcb_info and not accepted:
            add(Check("policy.tcb-status", True, "no TCB collateral supplied: TCB status not evaluated",
                      expected="require_tcb_info = false", actual=status.value))
        elif active:
            add(Check("policy.tcb-status", True, f"accepted as {active[0]}", actual=status.value))
        else:
            detail = (f"allowance for {status.value} expired on {accepted[0].until}" if accepted
                      else f"TCB status {status.value} not accepted")
            add(Check("policy.tcb-status", False, detail,
                      expected=" | ".join(str(a) for a in self.tcb_statuses if a.active(at)) or "none",
                      actual=status.value))

        if status is not TcbStatus.UP_TO_DATE and claims.advisory_ids:
            allowed = {a.value.upper() for a in self.advisories if a.active(at)}
            missing = [a for a in claims.advisory_ids if a.upper() not in allowed]
            add(Check("policy.advisories", not missing,
                      "every advisory accepted" if not missing else "advisories not accepted: " + ", ".join(missing),
                      expected=", ".join(sorted(allowed)) or "none", actual=", ".join(claims.advisory_ids)))

        if self.require_revocation_check and "crl_checked" in claims.platform:
            ok = bool(claims.platform["crl_checked"])
            add(Check("policy.revocation-checked", ok, "CRLs were checked" if ok else "no CRL was supplied",
                      expected="true", actual=str(ok).lower()))

        values = {**claims.measurements, **claims.signer}
        for name, rule in sorted(self.digests.items()):
            actual = values.get(name)
            if actual is None:
                add(Check(f"policy.{name}", True, f"not applicable to {tee}"))
                continue
            actual = actual.lower()
            if actual in rule.deny:
                add(Check(f"policy.{name}.deny", False, f"{name} is on the deny list",
                          expected="not " + actual, actual=actual))
            if rule.allow:
                ok = actual in rule.allow
                add(Check(f"policy.{name}.allow", ok, f"{name} {'is' if ok else 'is not'} on the allow list",
                          expected=" | ".join(rule.allow), actual=actual))
            elif actual not in rule.deny:
                add(Check(f"policy.{name}.deny", True, f"{name} not denied", actual=actual))

        for name, minimum in sorted(self.min_svn.items()):
            actual_svn = claims.svns.get(name)
            if actual_svn is None:
                add(Check(f"policy.min_svn.{name}", True, f"not applicable to {tee}"))
                continue
            add(Check(f"policy.min_svn.{name}", actual_svn >= minimum, f"{name} >= {minimum}",
                      expected=f">= {minimum}", actual=str(actual_svn)))

        if claims.tee is Tee.SNP:
            checks += self._appraise_snp(claims)
        return checks

    def _appraise_snp(self, claims: Claims) -> list[Check]:
        out = []
        flags = claims.platform.get("policy_flags", {})
        rules = self.snp
        if flags.get("migrate_ma"):
            out.append(Check("policy.snp.migration_agent", rules.allow_migration_agent,
                             "guest policy allows a migration agent",
                             expected="allowed" if rules.allow_migration_agent else "not set", actual="set"))
        if flags.get("smt") and not rules.allow_smt:
            out.append(Check("policy.snp.smt", False, "guest policy allows SMT", expected="not set", actual="set"))
        if rules.require_single_socket:
            ok = bool(flags.get("single_socket"))
            out.append(Check("policy.snp.single_socket", ok, "single-socket guest policy",
                             expected="set", actual="set" if ok else "not set"))
        vmpl = claims.platform.get("vmpl")
        if rules.max_vmpl is not None and vmpl is not None:
            out.append(Check("policy.snp.vmpl", vmpl <= rules.max_vmpl, f"VMPL <= {rules.max_vmpl}",
                             expected=f"<= {rules.max_vmpl}", actual=str(vmpl)))
        abi = claims.platform.get("abi")
        if rules.min_abi is not None and abi:
            major, minor = (int(x) for x in abi.split("."))
            ok = (major, minor) >= rules.min_abi
            out.append(Check("policy.snp.min_abi", ok, "guest policy minimum ABI",
                             expected=">= {}.{}".format(*rules.min_abi), actual=abi))
        return out


def rejection_reason(failed: list[Check]) -> str:
    """The cases.tsv reason token for a list of failed policy checks (most specific first)."""
    names = [c.name for c in failed]
    if "policy.debug" in names:
        return "debug"
    if "policy.tcb-status" in names:
        actual = next(c.actual for c in failed if c.name == "policy.tcb-status")
        try:
            return STATUS_REASONS[TcbStatus(actual)]
        except (ValueError, KeyError):
            return "tcb"
    if "policy.advisories" in names:
        return "tcb-advisory"
    if "policy.tee" in names:
        return "tee"
    return "policy"


# --- TOML value helpers ------------------------------------------------------------------------


def _no_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where} must be true or false")
    return value


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
