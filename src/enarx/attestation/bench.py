"""Attestation benchmark: verifications per second vs the crypto floor of the *same* verifications.

The floor is honest by construction: one verification runs under :func:`enarx.attestation.crypto.recording`,
which captures every signature operation it actually performs (key, scheme, data, signature); the floor
replays exactly those operations with ``cryptography`` alone. Both are timed side by side in each round, on
one thread, like the verifier they measure. The ratio (median over rounds) is floor time ÷ verification
time: 1.0 would mean the verifier costs nothing beyond its signatures.

Rows per format (``snp``, ``sgx``, ``tdx``; simulated evidence from test PKIs with production key sizes, or a
real Milan report with ``--corpus``):

* **cold** — a verifier with its signature memo off: every chain link, CRL and collateral signature is
  verified on every call (the parsed collateral stays cached, as a long-lived verifier holds it). Target ≥ 0.5.
* **warm** — the memo on, as a Steward runs: only the evidence's own signatures are left (SEV-SNP: the
  report; Intel: the quote and the QE report), so the floor is small and the fixed costs that remain
  (parsing the evidence, the time-dependent validity, CRL and freshness checks, claims, appraisal) weigh
  more. Target ≥ 0.25.

``collect(rounds)`` returns the rows in the bench runner's format; ``python -m enarx.attestation.bench``
prints them as a table (``--json`` for the rows) and exits 1 when a median misses its target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enarx.attestation import crypto

TARGETS = {"cold": 0.5, "warm": 0.25}
BATCH = 5


def _side_by_side(a: Callable[[], Any], b: Callable[[], Any], seconds: float) -> tuple[float, float]:
    """CPU seconds per call of ``a`` and of ``b``, measured in alternating batches for about ``seconds`` in
    all. Process CPU time, not wall time: the machine is shared, and both sides are single-threaded CPU work."""
    a()
    b()
    spent = [0.0, 0.0]
    count = 0
    while spent[0] + spent[1] < seconds:
        for i, fn in enumerate((a, b)):
            start = time.process_time()
            for _ in range(BATCH):
                fn()
            spent[i] += time.process_time() - start
        count += BATCH
    return spent[0] / count, spent[1] / count


def _cases(corpus: Path | None) -> dict[str, tuple[bytes, Any, Any, datetime]]:
    from enarx.attestation import roots
    from enarx.attestation.collateral import load_collateral
    from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx
    from enarx.attestation.simulate.snp import simulate_snp

    cases: dict[str, tuple[bytes, Any, Any, datetime]] = {}
    if corpus is not None:
        base = corpus / "sev-snp"
        collateral = load_collateral([base / "milan-virtee" / "vcek.der", base / "ca" / "ask_ark_milan.pem",
                                      base / "crl" / "ark_milan.crl.der"])
        cases["snp"] = ((base / "milan-virtee" / "report.bin").read_bytes(), collateral, roots.builtin_anchors(),
                        datetime(2023, 4, 4, 19, 23, 43, tzinfo=UTC))
    else:
        sim = simulate_snp()
        cases["snp"] = (sim.report, sim.collateral, sim.trust_anchors(), datetime.now(UTC))
    for name, make in (("sgx", simulate_sgx), ("tdx", simulate_tdx)):
        intel = make()
        cases[name] = (intel.quote, _as_received(intel.collateral), intel.anchors, intel.at + timedelta(seconds=1))
    return cases


def _as_received(collateral: Any) -> Any:
    """The simulator's collateral as a Steward receives it: DER bytes, not ``cryptography`` objects."""
    from enarx.attestation.collateral import der_of
    from enarx.attestation.model import CollateralSet

    return CollateralSet(certificates=[der_of(c) for c in collateral.certificates],
                         crls=[der_of(c) for c in collateral.crls], json_documents=list(collateral.json_documents))


def _round(verify: Callable[[], Any], seconds: float) -> tuple[float, float, int]:
    """(verification s/call, floor s/call, signature operations) measured side by side."""
    with crypto.recording() as ops:
        verify()
    recorded = list(ops)

    def floor() -> None:
        for op in recorded:
            crypto.replay(op.public_key, op.scheme, op.data, op.signature)

    per_verify, per_floor = _side_by_side(verify, floor, seconds)
    return per_verify, per_floor, len(recorded)


def collect(rounds: int = 5, *, seconds: float = 0.3, corpus: Path | None = None) -> list[dict[str, Any]]:
    """The attestation rows of ``make bench`` (see the bench runner's row format)."""
    from enarx.attestation.verifier import Verifier

    rows = []
    for fmt, (evidence, collateral, anchors, at) in _cases(corpus).items():
        for mode, memo in (("cold", False), ("warm", True)):
            verifier = Verifier(anchors=anchors, memo=memo)
            verdict = verifier.verify(evidence, collateral, at=at)
            if verdict.status != "trusted":
                raise RuntimeError(f"{fmt} bench evidence is not trusted: {verdict.status}/{verdict.reason}")

            def verify(v: Verifier = verifier, e: bytes = evidence, c: Any = collateral, a: datetime = at) -> Any:
                return v.verify(e, c, at=a)

            measured = [_round(verify, seconds) for _ in range(rounds)]
            # per round: (baseline, value) = (floor replays/s, verifications/s), as the bench runner's rows
            samples = [(_sig4(1 / f), _sig4(1 / v)) for v, f, _ in measured]
            ratios = [_sig4(value / base) for base, value in samples]
            ops = measured[-1][2]
            source = "real Milan report (corpus)" if fmt == "snp" and corpus else "simulated"
            rows.append({
                "group": "attestation",
                "name": f"{fmt.upper()} verify + appraise, {mode} (memo {'on' if memo else 'off'})",
                "unit": "verifications/s",
                "baseline_label": f"crypto floor: the {ops} signature check{'' if ops == 1 else 's'} it performed, replayed",
                "baseline": statistics.median(b for b, _ in samples),
                "value": statistics.median(v for _, v in samples),
                "ratio": statistics.median(ratios),
                "target": TARGETS[mode],
                "compare": ">=",
                "rounds": ratios,
                "samples": [list(p) for p in samples],
                "note": f"{source} evidence; floor counted by instrumenting the crypto calls in the same run; "
                        "CPU time, single thread",
            })
    return rows


def _sig4(x: float) -> float:
    """Four significant digits (the bench record's precision)."""
    return float(f"{x:.4g}")


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| benchmark | verifications/s | crypto floor/s | signatures | ratio | target |",
             "|---|---:|---:|---:|---:|:-:|"]
    for r in rows:
        ops = r["baseline_label"].split(" signature")[0].rsplit(" ", 1)[-1]
        lines.append(f"| {r['name']} | {r['value']:.0f} | {r['baseline']:.0f} | {ops} | {r['ratio']:.2f} | "
                     f"≥ {r['target']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (each measures verifier and floor)")
    parser.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    parser.add_argument("--corpus", type=Path, default=None, help="use a real report from this corpus for snp")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    corpus = args.corpus
    if corpus is None and os.environ.get("ENARX_CORPORA"):
        corpus = Path(os.environ["ENARX_CORPORA"])
    if corpus is not None and not (corpus / "sev-snp").is_dir():
        corpus = None
    rows = collect(args.rounds, seconds=args.seconds, corpus=corpus)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))
    return 0 if all(r["ratio"] >= r["target"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
