"""``enarx attest``: verify, show and simulate attestation evidence (a thin shell over the library).

Exit status of ``verify``: 0 trusted · 2 genuine but rejected (policy or TCB status) · 3 verification
failed (signature, chain, root, revoked, expired, malformed) · 1 usage or I/O error. Errors are one
``Error: …`` line on stderr, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_TRUSTED, EXIT_USAGE, EXIT_REJECTED, EXIT_FAILED = 0, 1, 2, 3
STATUS_EXIT = {"trusted": EXIT_TRUSTED, "rejected": EXIT_REJECTED, "failed": EXIT_FAILED}


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)  # SystemExit passes through click in and out of standalone mode


def _usage(message: str) -> NoReturn:
    """A malformed option value: a usage error (exit 2, or 1 for `verify`; see ``enarx.cli.exits``)."""
    from enarx.cli.exits import usage_status

    command = click.get_current_context().command_path
    _fail(f"{message} (see `{command} --help`)", usage_status(command))


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        _fail(f"cannot read {what} {path}: {exc.strerror or exc}")


def _time(value: str | None) -> datetime | None:
    from enarx.attestation.verifier import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        _usage(f"--at {value!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z) or 'now'")


def _hex(value: str | None, option: str) -> bytes | None:
    if value is None:
        return None
    text = value.strip().removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        _usage(f"{option}: {value!r} is not hex")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def attest() -> None:
    """Verify, inspect and simulate TEE attestation evidence (SEV-SNP, TDX, SGX)."""


# --- verify -----------------------------------------------------------------------------------------


@attest.command()
@click.argument("evidence", metavar="EVIDENCE")
@click.option("--collateral", "collateral_paths", multiple=True, metavar="PATH",
              help="Collateral the verifier holds: certificates, chains, CRLs, TCB info, QE identity — a file, a "
                   "directory (e.g. a collateral cache), a cache bundle (.tar.gz) or FILE#field (a PEM chain in a "
                   "JSON field). Repeatable. Roots given here are never trusted.")
@click.option("--at", "at", metavar="TIME", help="Verify as of this instant (ISO 8601; default: now).")
@click.option("--policy", "policy_path", metavar="FILE",
              help="Appraisal policy (TOML; every key and default in docs/policy.md); default: the fail-closed "
                   "default policy.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict, claims and every check as JSON.")
@click.option("--trust-anchor", "trust_anchors", multiple=True, metavar="[FORMATS=]FILE",
              help="Also trust this test root for the evidence formats it is named for (snp=FILE, sgx,tdx=FILE), "
                   "or, unnamed, those its subject and key fit (simulator roots bind themselves). Every verdict "
                   "then warns.")
def verify(evidence: str, collateral_paths: tuple[str, ...], at: str | None, policy_path: str | None,
           as_json: bool, trust_anchors: tuple[str, ...]) -> None:
    """Verify EVIDENCE (binary, hex or base64; type detected by content) and appraise it.

    Exit status: 0 trusted, 2 rejected (genuine, but the policy refuses it — including collateral the
    policy requires that was not given, each missing item named), 3 verification failed, 1 usage error.
    """
    from enarx.attestation import roots
    from enarx.attestation.anchors import AnchorError, load_anchor_file, split_spec
    from enarx.attestation.collateral import CollateralError
    from enarx.attestation.policy import Policy, PolicyError
    from enarx.attestation.store import CollateralStore
    from enarx.attestation.verifier import Verifier

    data = _read(evidence, "evidence")
    when = _time(at)
    try:
        policy = Policy.from_file(policy_path) if policy_path else Policy.default()
    except PolicyError as exc:
        _fail(str(exc))
    extra: list[Any] = []
    for spec in trust_anchors:
        if not Path(split_spec(spec)[1]).is_file():
            _fail(f"--trust-anchor {spec}: no such file")
        try:
            extra += load_anchor_file(spec)
        except AnchorError as exc:
            _fail(f"--trust-anchor {exc}")
    try:
        store = CollateralStore.load(collateral_paths)
    except CollateralError as exc:
        _fail(str(exc))
    for warning in store.warnings:  # e.g. a truncated download in DIR: say so, as the Steward does
        click.echo(f"warning: --collateral: {warning}", err=True)
    verifier = Verifier(anchors=roots.builtin_anchors(extra), policy=policy, collateral=store)
    verdict = verifier.verify(data, at=when)
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=2, sort_keys=False))
    else:
        _print_verdict(verdict)
    if verdict.status != "trusted":
        sys.exit(STATUS_EXIT[verdict.status])


def _print_verdict(verdict: Any) -> None:
    claims = verdict.claims
    tee = claims.tee.value if claims else "evidence"
    click.echo(f"{verdict.status} ({verdict.reason}): {tee}")
    if claims is not None:
        for name, value in {**claims.measurements, **claims.signer}.items():
            click.echo(f"  {name}: {value}")
        click.echo(f"  tcb_status: {claims.tcb_status.value}" +
                   (f" ({', '.join(claims.advisory_ids)})" if claims.advisory_ids else ""))
        if claims.svns:
            click.echo("  svns: " + " ".join(f"{k}={v}" for k, v in claims.svns.items()))
        click.echo(f"  debug: {str(claims.debug).lower()}")
        click.echo(f"  report_data: {claims.report_data.hex()}")
        if claims.collateral_expiry:
            click.echo(f"  collateral valid until: {claims.collateral_expiry.isoformat()}")
    failed = [c for c in verdict.checks if not c.passed]
    for check in failed:
        line = f"  FAILED {check.name}: {check.detail}"
        if check.expected is not None or check.actual is not None:
            line += f" (expected {check.expected}, actual {check.actual})"
        click.echo(line)
    for warning in verdict.warnings:
        click.echo(f"warning: {warning}", err=True)


# --- show -------------------------------------------------------------------------------------------


@attest.command()
@click.argument("evidence", metavar="EVIDENCE")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed structure as JSON.")
def show(evidence: str, as_json: bool) -> None:
    """Print the parsed structure of EVIDENCE (no verification)."""
    from enarx.attestation import formats
    from enarx.attestation.model import AttestationError
    from enarx.attestation.verifier import decode_evidence

    data = decode_evidence(_read(evidence, "evidence"))
    try:
        fmt = formats.detect(data)
        parsed = fmt.parse(data)
        structure = parsed.to_dict() if hasattr(parsed, "to_dict") else _plain(parsed)
    except AttestationError as exc:
        _fail(str(exc), EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"format": fmt.name, "size": len(data), "structure": structure}, indent=2))
        return
    click.echo(f"format: {fmt.name} ({len(data)} bytes)")
    _print_tree(structure, 0)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
        return out
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _print_tree(value: Any, depth: int) -> None:
    pad = "  " * depth
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                click.echo(f"{pad}{key}:")
                _print_tree(item, depth + 1)
            else:
                click.echo(f"{pad}{key}: {_short(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                click.echo(f"{pad}-")
                _print_tree(item, depth + 1)
            else:
                click.echo(f"{pad}- {_short(item)}")
    else:
        click.echo(f"{pad}{_short(value)}")


def _short(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 200 else text[:200] + f"… ({len(text)} chars)"


# --- simulate ---------------------------------------------------------------------------------------


@attest.group()
def simulate() -> None:
    """Create test PKIs and issue evidence plus collateral in the real formats.

    Everything here uses the same persistent test PKIs as `enarx run --simulate-tee` (see
    `enarx attest simulate pki`). Real vendor roots never trust simulated evidence; verify it with
    --trust-anchor DIR/root.pem.
    """


def _default_pki_dir() -> Path:
    from enarx.runtime.cachedir import default_cache_dir

    return default_cache_dir() / "simulator"


def _pki_option(fn: Any) -> Any:
    return click.option("--pki", "pki_dir", metavar="DIR", default=None,
                        help="The simulator's persistent test PKIs (default: $ENARX_CACHE_DIR/simulator, the "
                             "directory --simulate-tee uses).")(fn)


@simulate.command("pki")
@click.argument("directory", metavar="[DIR]", required=False)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="How long the written collateral (TCB info, QE identity, CRLs) stays valid.")
@click.option("--at", "at", metavar="TIME", help="Issue the collateral as of this instant (default: now).")
def simulate_pki(directory: str | None, days: int, at: str | None) -> None:
    """Create (or reuse) the simulator's test PKIs in DIR and write the collateral a Steward needs.

    DIR defaults to the directory `enarx run --simulate-tee` uses. Prints the anchor files to pass to
    `enarx steward serve --insecure-trust-anchor` and the directory to pass to `--collateral`, with which the
    Steward certifies simulated SEV-SNP, SGX and TDX keeps under the default policy. Run it again to renew
    the collateral before it expires.
    """
    from enarx.attestation.simulate.persistent import SimulatorPki

    pki = SimulatorPki(Path(directory) if directory else _default_pki_dir())
    try:
        pki.snp()
        pki.intel()
        written = pki.write_collateral(_time(at), days=days)
    except OSError as exc:
        _fail(f"cannot write the simulator PKI in {pki.directory}: {exc.strerror or exc}")
    for path in pki.anchor_files():
        click.echo(f"anchor: {path}")
    click.echo(f"collateral: {pki.collateral_dir} ({len(written)} files, valid for {days} days)")
    anchors = " ".join(f"--insecure-trust-anchor {p}" for p in pki.anchor_files())
    click.echo(f"steward: enarx steward serve --generate-ca steward.local {anchors} --collateral {pki.collateral_dir}",
               err=True)
    click.echo(f"keep: enarx run --simulate-tee sev-snp|sgx|tdx --simulator-pki {pki.directory} app.wasm", err=True)


def _tcb_option(value: str | None, option: str) -> dict[str, int] | None:
    if value is None:
        return None
    out: dict[str, int] = {}
    aliases = {"bl": "bootloader", "ucode": "microcode"}
    for part in value.split(","):
        key, sep, num = part.partition("=")
        key = aliases.get(key.strip(), key.strip())
        if not sep or key not in ("bootloader", "tee", "snp", "microcode", "fmc") or not num.strip().isdigit():
            _usage(f"{option}: expected bootloader=N,tee=N,snp=N,microcode=N[,fmc=N], got {value!r}")
        out[key] = int(num)
    return out


@simulate.command("snp")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Directory for report.bin and collateral.")
@click.option("--report-data", metavar="HEX", help="64 bytes of report_data (shorter is zero-padded).")
@click.option("--measurement", metavar="HEX", help="48-byte launch measurement.")
@click.option("--host-data", metavar="HEX")
@click.option("--id-key-digest", metavar="HEX")
@click.option("--author-key-digest", metavar="HEX", help="Also sets AUTHOR_KEY_EN.")
@click.option("--family-id", metavar="HEX")
@click.option("--image-id", metavar="HEX")
@click.option("--guest-svn", type=int, default=0, show_default=True)
@click.option("--debug", is_flag=True, help="Set the guest policy DEBUG bit.")
@click.option("--policy", "policy_value", metavar="INT", help="Whole guest policy value (overrides the flags).")
@click.option("--smt/--no-smt", default=True, show_default=True)
@click.option("--migrate-ma", is_flag=True, help="Allow a migration agent in the guest policy.")
@click.option("--single-socket", is_flag=True)
@click.option("--abi", "abi_version", default="1.55", show_default=True, metavar="MAJOR.MINOR")
@click.option("--vmpl", type=click.IntRange(0, 3), default=0, show_default=True)
@click.option("--tcb", metavar="SPEC", help="Reported TCB, e.g. bootloader=4,tee=0,snp=24,microcode=219.")
@click.option("--current-tcb", metavar="SPEC")
@click.option("--chip-id", metavar="HEX")
@click.option("--product", type=click.Choice(["Milan", "Genoa", "Turin"]), default="Milan", show_default=True)
@click.option("--signing-key", type=click.Choice(["vcek", "vlek"]), default="vcek", show_default=True)
@click.option("--version", "report_version", type=click.Choice(["2", "3", "5"]), default="3", show_default=True)
@click.option("--revoke-vcek", is_flag=True, help="Add a CRL from the ASK listing the VCEK.")
@click.option("--revoke-ask", is_flag=True, help="List the ASK/ASVK in the ARK CRL.")
@click.option("--no-crl", is_flag=True, help="Do not issue an ARK CRL.")
@click.option("--at", "at", metavar="TIME", help="Issue as of this instant (default: now).")
@_pki_option
def simulate_snp_cmd(out_dir: str, report_data: str | None, measurement: str | None, host_data: str | None,
                     id_key_digest: str | None, author_key_digest: str | None, family_id: str | None,
                     image_id: str | None, guest_svn: int, debug: bool, policy_value: str | None, smt: bool,
                     migrate_ma: bool, single_socket: bool, abi_version: str, vmpl: int, tcb: str | None,
                     current_tcb: str | None, chip_id: str | None, product: str, signing_key: str,
                     report_version: str, revoke_vcek: bool, revoke_ask: bool, no_crl: bool, at: str | None,
                     pki_dir: str | None) -> None:
    """Simulate an AMD SEV-SNP report with VCEK/VLEK, ASK/ASVK, ARK and CRL."""
    from enarx.attestation.simulate.persistent import SimulatorPki
    from enarx.attestation.simulate.snp import simulate_snp

    try:
        abi_major, abi_minor = (int(x) for x in abi_version.split("."))
    except ValueError:
        _usage(f"--abi {abi_version!r}: expected MAJOR.MINOR")
    policy_int = None
    if policy_value is not None:
        try:
            policy_int = int(policy_value, 0)
        except ValueError:
            _usage(f"--policy {policy_value!r} is not an integer")
    kwargs: dict[str, Any] = {}
    for name, value, size in (("report_data", report_data, 64), ("measurement", measurement, 48),
                              ("host_data", host_data, 32), ("id_key_digest", id_key_digest, 48),
                              ("author_key_digest", author_key_digest, 48), ("family_id", family_id, 16),
                              ("image_id", image_id, 16), ("chip_id", chip_id, 64)):
        raw = _hex(value, "--" + name.replace("_", "-"))
        if raw is not None:
            if len(raw) > size:
                _usage(f"--{name.replace('_', '-')}: {len(raw)} bytes, at most {size}")
            kwargs[name] = raw.ljust(size, b"\x00") if name == "chip_id" else raw
    try:
        sim = simulate_snp(
            out_dir, guest_svn=guest_svn, debug=debug, policy=policy_int, smt=smt, migrate_ma=migrate_ma,
            single_socket=single_socket, abi_version=(abi_major, abi_minor), vmpl=vmpl,
            tcb=_tcb_option(tcb, "--tcb"), current_tcb=_tcb_option(current_tcb, "--current-tcb"),
            product=product, signing_key=signing_key, version=int(report_version), revoke_vcek=revoke_vcek,
            revoke_ask=revoke_ask, crl=not no_crl, at=_time(at),
            pki=SimulatorPki(Path(pki_dir) if pki_dir else _default_pki_dir()).snp(product), **kwargs,
        )
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write to {out_dir}: {exc.strerror or exc}")
    _print_simulated(out_dir, sim.paths)


def _print_simulated(out_dir: str, paths: dict[str, Path]) -> None:
    for label, path in paths.items():
        click.echo(f"{label}: {path}")
    click.echo(f"verify with: enarx attest verify {Path(out_dir) / 'report.bin' if 'report' in paths else '…'} "
               f"--collateral {out_dir} --trust-anchor {Path(out_dir) / 'root.pem'}", err=True)


def _field_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.isdigit():
        return int(text)
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return text


def _intel_command(tee: str) -> click.Command:
    @click.command(tee, help=f"Simulate an Intel {tee.upper()} quote with its collateral (test Intel PKI).")
    @click.option("--out", "out_dir", required=True, metavar="DIR")
    @click.option("--report-data", metavar="HEX")
    @click.option("--debug", is_flag=True)
    @click.option("--set", "fields", multiple=True, metavar="FIELD=VALUE",
                  help="Any simulator field (hex bytes, integers, true/false), e.g. --set isv_svn=3.")
    @_pki_option
    def command(out_dir: str, report_data: str | None, debug: bool, fields: tuple[str, ...],
                pki_dir: str | None) -> None:
        from enarx.attestation.simulate import intel
        from enarx.attestation.simulate.persistent import SimulatorPki

        kwargs: dict[str, Any] = {}
        for item in fields:
            key, sep, value = item.partition("=")
            if not sep or not key:
                _usage(f"--set {item!r}: expected FIELD=VALUE")
            kwargs[key.strip()] = _field_value(value.strip())
        if report_data is not None:
            raw = _hex(report_data, "--report-data") or b""
            if len(raw) > 64:
                _usage(f"--report-data: {len(raw)} bytes, at most 64")
            kwargs["report_data"] = raw.ljust(64, b"\x00")
        if debug:
            kwargs["debug"] = True
        try:
            kwargs["pki"] = SimulatorPki(Path(pki_dir) if pki_dir else _default_pki_dir()).intel()
            sim = getattr(intel, f"simulate_{tee}")(out_dir, **kwargs)
        except (ValueError, TypeError) as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot write to {out_dir}: {exc.strerror or exc}")
        paths = dict(getattr(sim, "paths", {}) or {})
        root = Path(out_dir) / "root.pem"
        if not root.exists() and getattr(sim, "root", None) is not None:
            from cryptography.hazmat.primitives import serialization

            root.write_bytes(sim.root.public_bytes(serialization.Encoding.PEM))  # same name for every TEE
            paths["root"] = root
        for label, path in paths.items():
            click.echo(f"{label}: {path}")
        click.echo(f"verify with: enarx attest verify {Path(out_dir) / 'quote.bin'} --collateral {out_dir} "
                   f"--trust-anchor {root}", err=True)

    return command


simulate.add_command(_intel_command("sgx"))
simulate.add_command(_intel_command("tdx"))


# --- cache ------------------------------------------------------------------------------------------


@attest.group()
def cache() -> None:
    """Fetch collateral ahead of time (AMD KDS, Intel PCS) and move it as a bundle to air-gapped sites.

    Verification never fetches: pass the cache directory to `verify --collateral DIR`.
    """


@cache.command("fetch")
@click.argument("evidence", metavar="EVIDENCE")
@click.option("--dir", "directory", required=True, metavar="DIR", help="Cache directory (created if needed).")
@click.option("--product", type=click.Choice(["Milan", "Genoa", "Turin"]), help="For v2 SNP reports (no CPUID).")
@click.option("--kds-url", default=None, metavar="URL", help="AMD KDS base URL.")
@click.option("--pcs-url", default=None, metavar="URL", help="Intel PCS base URL.")
@click.option("--force", is_flag=True, help="Fetch even items that are still fresh.")
def cache_fetch(evidence: str, directory: str, product: str | None, kds_url: str | None, pcs_url: str | None,
                force: bool) -> None:
    """Fetch the collateral EVIDENCE needs into DIR (items before their nextUpdate are kept)."""
    from enarx.attestation import cache as cache_mod
    from enarx.attestation import formats
    from enarx.attestation.model import AttestationError
    from enarx.attestation.verifier import decode_evidence

    data = decode_evidence(_read(evidence, "evidence"))
    kwargs = {k: v for k, v in (("kds_url", kds_url), ("pcs_url", pcs_url)) if v}
    store = cache_mod.CollateralCache(directory, **kwargs)
    try:
        fmt = formats.detect(data)
        if not fmt.fetchable:
            _fail(f"{fmt.name} evidence carries its own certificates: nothing to fetch")
        if fmt.name == "snp":
            paths = store.fetch_snp(data, product=product, force=force)
        else:
            paths = store.fetch_intel(_fmspc_of(data), tee=fmt.name, force=force)
    except AttestationError as exc:
        _fail(str(exc), EXIT_FAILED if exc.reason == "parse" else EXIT_USAGE)
    except OSError as exc:
        _fail(f"cannot write to {directory}: {exc.strerror or exc}")
    for path in paths:
        click.echo(str(path))


def _fmspc_of(quote: bytes) -> bytes:
    from enarx.attestation.intel.abi import parse_quote
    from enarx.attestation.intel.pck import pck_extensions
    from enarx.attestation.model import MalformedEvidence
    from enarx.attestation.pki import Cert, split_pem

    chain = parse_quote(quote).certification_data.pem_chain
    ders = [der for label, der in split_pem(chain or b"") if label == "CERTIFICATE"]
    if not ders:
        raise MalformedEvidence("the quote carries no PCK chain: its FMSPC is unknown")
    return pck_extensions(Cert.from_der(ders[0])).fmspc


@cache.command("export")
@click.argument("directory", metavar="DIR")
@click.argument("bundle", metavar="BUNDLE")
def cache_export(directory: str, bundle: str) -> None:
    """Write the cache DIR to BUNDLE (.tar.gz with a SHA-256 manifest)."""
    from enarx.attestation.cache import CollateralCache

    if not Path(directory).is_dir():
        _fail(f"{directory}: no such cache directory")
    try:
        click.echo(str(CollateralCache(directory).export_bundle(bundle)))
    except OSError as exc:
        _fail(f"cannot write {bundle}: {exc.strerror or exc}")


@cache.command("import")
@click.argument("bundle", metavar="BUNDLE")
@click.argument("directory", metavar="DIR")
def cache_import(bundle: str, directory: str) -> None:
    """Unpack BUNDLE into DIR after checking every file against its manifest."""
    from enarx.attestation.cache import CacheError, CollateralCache

    try:
        CollateralCache.import_bundle(bundle, directory)
    except CacheError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write to {directory}: {exc.strerror or exc}")
    click.echo(directory)


def main() -> None:  # pragma: no cover - convenience for `python -m enarx.cli.attest`
    attest(prog_name="enarx attest")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
