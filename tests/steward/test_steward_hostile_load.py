"""Hostile load (issue 8): 100 oversized or CRL-heavy requests while 32 honest clients attest, retrying on 503 as
Retry-After says. Every honest request must be certified, and the real server's peak RSS (from /proc) must grow
by less than 100 MiB. No duration is asserted (the benchmark reports throughput: bench/bench_steward.py)."""

from __future__ import annotations

from _helpers import steward_process

from enarx.steward import loadgen

HONEST_CLIENTS = 32
PER_CLIENT = 3
HOSTILE = 100
RSS_GROWTH_LIMIT_KIB = 100 << 10


def test_honest_clients_are_all_certified_under_hostile_load(tmp_path) -> None:
    honest = loadgen.snp_csrs(tmp_path, HONEST_CLIENTS * PER_CLIENT)
    hostile = loadgen.hostile_bodies(HOSTILE, simulator=tmp_path)
    proc, port = steward_process("--generate-ca", "hostile.test", "--insecure-trust-anchor",
                                 str(loadgen.simulator_chain(tmp_path)))
    try:
        groups = [honest[i::HONEST_CLIENTS] for i in range(HONEST_CLIENTS)]
        warm = loadgen.run_load(port, [honest[:4]])  # imports, caches and first allocations happen here
        assert warm.honest_ok == 4, warm
        baseline = loadgen.peak_rss_kib(proc.pid)
        result = loadgen.run_load(port, groups, hostile)
        growth = loadgen.peak_rss_kib(proc.pid) - baseline
    finally:
        proc.terminate()
        proc.wait(20)
    assert result.honest_ok == HONEST_CLIENTS * PER_CLIENT and result.honest_failed == [], result
    assert sum(result.hostile_statuses.values()) == HOSTILE
    assert set(result.hostile_statuses) <= {413, 400, 503}, result.hostile_statuses  # refused, never 500 or a reset
    assert result.hostile_statuses.get(413, 0) >= HOSTILE // 3 and result.hostile_statuses.get(400, 0) >= 1
    assert growth < RSS_GROWTH_LIMIT_KIB, f"peak RSS grew by {growth / 1024:.1f} MiB"
    decisions = [line for line in proc.log_lines if '"steward.decision"' in line]
    assert sum('"reason": "crl-too-large"' in line for line in decisions) >= 1
