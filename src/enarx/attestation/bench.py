"""Attestation benchmark: verifications per second per format vs the crypto floor, in the same run.

Run with ``python -m enarx.attestation.bench [--seconds S] [--json]`` (``bench/bench_attest.py`` is a thin
wrapper). Collateral is warm (loaded and parsed once, as a long-lived verifier holds it); each iteration
is a complete :meth:`Verifier.verify` — detection, parsing, every signature, chain, CRL and validity
check, claims and policy appraisal. The *floor* is the signature verifications that verification must
perform, timed alone with ``cryptography`` on the same keys and data:

* ``snp``: ECDSA P-384/SHA-384 over the report + RSASSA-PSS over the VCEK (by the ASK) and the ASK (by
  the ARK), + the ARK CRL when one is supplied;
* ``sgx``/``tdx``: nine ECDSA P-256 verifications (attestation key, QE report, PCK and platform CA
  certificates, PCK and root CRLs, TCB info, TCB signing certificate, QE identity).

Evidence is simulated (test PKIs with production key sizes) so the benchmark needs no corpus; with
``--corpus DIR`` a real Milan report is used for ``snp`` instead. Target: ratio ≥ 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

TARGET = 0.5


def _rate(fn: Callable[[], Any], seconds: float) -> float:
    fn()  # warm
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        count += 10
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def _snp_case(corpus: Path | None) -> tuple[bytes, Any, Any, datetime]:
    from enarx.attestation import roots
    from enarx.attestation.collateral import load_collateral

    if corpus is not None:
        base = corpus / "sev-snp"
        collateral = load_collateral([base / "milan-virtee" / "vcek.der", base / "ca" / "ask_ark_milan.pem",
                                      base / "crl" / "ark_milan.crl.der"])
        at = datetime(2023, 4, 4, 19, 23, 43, tzinfo=UTC)
        return (base / "milan-virtee" / "report.bin").read_bytes(), collateral, roots.builtin_anchors(), at
    from enarx.attestation.simulate.snp import simulate_snp

    sim = simulate_snp()
    return sim.report, sim.collateral, sim.trust_anchors(), datetime.now(UTC)


def _snp_floor(report: bytes, collateral: Any) -> Callable[[], None]:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from enarx.attestation.collateral import certificates_of, crls_of
    from enarx.attestation.pki import verify_signed
    from enarx.attestation.snp.abi import parse_report

    parsed = parse_report(report)
    certs = {c.name: c for c in certificates_of(collateral)}
    leaf = certs.get("SEV-VCEK") or certs["SEV-VLEK"]
    ask = next(c for c in certs.values() if c.subject_der == leaf.issuer_der)
    ark = next(c for c in certs.values() if c.subject_der == ask.issuer_der)
    crls = [c for c in crls_of(collateral) if c.issuer_der == ark.subject_der]
    sig = encode_dss_signature(parsed.signature_r, parsed.signature_s)
    signed = report[:0x2A0]
    leaf_key, ask_key, ark_key = leaf.public_key, ask.public_key, ark.public_key

    def floor() -> None:
        leaf_key.verify(sig, signed, ec.ECDSA(hashes.SHA384()))
        assert verify_signed(ask_key, leaf.algorithm, leaf.tbs, leaf.signature)
        assert verify_signed(ark_key, ask.algorithm, ask.tbs, ask.signature)
        for crl in crls:
            assert verify_signed(ark_key, crl.algorithm, crl.tbs, crl.signature)

    return floor


def _p256_floor(count: int) -> Callable[[], None]:
    key = ec.generate_private_key(ec.SECP256R1())
    data = os.urandom(632)
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()

    def floor() -> None:
        for _ in range(count):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))

    return floor


def run(seconds: float = 1.0, corpus: Path | None = None) -> list[dict[str, Any]]:
    from enarx.attestation.verifier import Verifier

    rows = []
    report, collateral, anchors, at = _snp_case(corpus)
    verifier = Verifier(anchors=anchors)
    assert verifier.verify(report, collateral, at=at).status == "trusted"
    verify_rate = _rate(lambda: verifier.verify(report, collateral, at=at), seconds)
    floor_rate = _rate(_snp_floor(report, collateral), seconds)
    rows.append({"format": "snp", "source": "corpus" if corpus else "simulated", "verify_per_s": verify_rate,
                 "floor_per_s": floor_rate})
    try:
        from enarx.attestation.simulate import intel
    except ImportError:
        intel = None  # type: ignore[assignment]
    for tee in ("sgx", "tdx"):
        if intel is None:
            rows.append({"format": tee, "source": "unavailable"})
            continue
        sim = getattr(intel, f"simulate_{tee}")()
        from enarx.attestation import roots

        v = Verifier(anchors=roots.builtin_anchors([sim.root]))
        when = sim.at + timedelta(seconds=1)
        verdict = v.verify(sim.quote, sim.collateral, at=when)
        if verdict.status != "trusted":
            rows.append({"format": tee, "source": f"simulated verdict {verdict.status}/{verdict.reason}"})
            continue
        verify_rate = _rate(lambda v=v, sim=sim, when=when: v.verify(sim.quote, sim.collateral, at=when), seconds)
        floor_rate = _rate(_p256_floor(9), seconds)
        rows.append({"format": tee, "source": "simulated", "verify_per_s": verify_rate, "floor_per_s": floor_rate})
    for row in rows:
        if "verify_per_s" in row:
            row["ratio"] = row["verify_per_s"] / row["floor_per_s"]
            row["meets_target"] = row["ratio"] >= TARGET
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| format | evidence | verifications/s (warm) | crypto floor/s | ratio | ≥ 0.5 |",
             "|---|---|---:|---:|---:|:-:|"]
    for r in rows:
        if "verify_per_s" not in r:
            lines.append(f"| {r['format']} | {r['source']} | – | – | – | – |")
            continue
        lines.append(f"| {r['format']} | {r['source']} | {r['verify_per_s']:.0f} | {r['floor_per_s']:.0f} | "
                     f"{r['ratio']:.2f} | {'yes' if r['meets_target'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--corpus", type=Path, default=None, help="use a real report from this corpus for snp")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    corpus = args.corpus
    if corpus is None and os.environ.get("ENARX_CORPORA"):
        corpus = Path(os.environ["ENARX_CORPORA"])
    if corpus is not None and not (corpus / "sev-snp").is_dir():
        corpus = None
    rows = run(args.seconds, corpus)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))
    return 0 if all(r.get("meets_target", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
