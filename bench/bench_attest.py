"""Attestation verification rate vs the crypto floor: an adapter from `enarx.attestation.bench` (owned with
the attestation core) to the bench rows. When that module offers ``collect(rounds)`` itself, it is used as is."""

from __future__ import annotations

from framework import quick, row

from enarx.attestation import bench as attestation

NAMES = {"snp": "SEV-SNP", "sgx": "SGX", "tdx": "TDX"}


def collect(rounds: int) -> list[dict]:
    if hasattr(attestation, "collect"):
        return attestation.collect(rounds)
    seconds = 0.2 if quick() else 1.0
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for r in attestation.run(seconds):
            if "verify_per_s" not in r:
                raise RuntimeError(f"attestation bench for {r['format']}: {r['source']}")
            samples.setdefault((r["format"], r["source"]), []).append((r["floor_per_s"], r["verify_per_s"]))
    return [row("attestation", f"{NAMES.get(fmt, fmt)} verifications/s, warm collateral ({source} evidence)",
                unit="/s", baseline_label="crypto floor", samples=pairs, target=attestation.TARGET)
            for (fmt, source), pairs in samples.items()]
