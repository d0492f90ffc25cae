"""Honest and hostile Steward clients, for the hostile-load test and its benchmark (not used by the server).

Honest clients attest with simulated SEV-SNP CSRs over keep-alive connections and, on 503, wait as
``Retry-After`` says and try again. Hostile clients send what issue 8 found wearing the Steward down: bodies
far over the size limit and CSRs whose CrlList carries a CRL of 42,000 entries.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation import der
from enarx.attestation.binding import report_data_for
from enarx.attestation.envelope import OID_SNP, snp_extension
from enarx.attestation.model import Tee
from enarx.runtime.attest.csr import build_csr

CT_PKCS10 = "application/pkcs10"
CRL_URL = "https://kdsintf.amd.com/vcek/v1/Milan/crl"


@dataclass
class LoadResult:
    honest_ok: int = 0
    honest_failed: list[int] = field(default_factory=list)
    retries: int = 0
    hostile_statuses: dict[int, int] = field(default_factory=dict)
    honest_seconds: float = 0.0

    @property
    def honest_rate(self) -> float:
        return self.honest_ok / self.honest_seconds if self.honest_seconds else 0.0


def many_entry_crl(entries: int) -> bytes:
    """A signed DER CRL with ``entries`` revoked serials, built directly (``cryptography``'s builder is slow)."""
    key = ec.generate_private_key(ec.SECP256R1())
    when = der.time(datetime(2024, 1, 1, tzinfo=UTC))
    revoked = b"".join(der.seq(der.integer(1 + i), when) for i in range(entries))
    algorithm = der.seq(der.oid("1.2.840.10045.4.3.2"))
    tbs = der.seq(der.integer(1), algorithm, der.name([("CN", "hostile CRL")]), when,
                  der.time(datetime(2040, 1, 1, tzinfo=UTC)), *([der.seq(revoked)] if entries else []))
    return der.seq(tbs, algorithm, der.bit_string(key.sign(tbs, ec.ECDSA(hashes.SHA256()))))


def snp_csrs(simulator: Path, count: int, extra_crls: list[bytes] = ()) -> list[bytes]:
    """``count`` CSRs with simulated SEV-SNP evidence from the simulator PKI in ``simulator`` (binding their keys
    in the Enarx layout), optionally carrying ``extra_crls`` too."""
    from enarx.attestation.simulate.persistent import SimulatorPki
    from enarx.attestation.simulate.snp import simulate_snp

    pki = SimulatorPki(simulator).snp()
    out = []
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP384R1())
        sim = simulate_snp(report_data=report_data_for(key, Tee.SNP), measurement=b"\x42" * 48, pki=pki)
        crls = [(CRL_URL, c) for c in [*sim.crls, *extra_crls]]
        out.append(build_csr(key, OID_SNP, snp_extension(sim.endorsement_cert, sim.report, crls)))
    return out


def simulator_chain(simulator: Path) -> Path:
    """The simulator's SNP chain PEM (what ``--insecure-trust-anchor`` needs), made on first use."""
    from enarx.attestation.simulate.persistent import SimulatorPki

    pki = SimulatorPki(simulator)
    return pki.snp_dir(pki.snp().product) / "chain.pem"


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, str | None]:
    conn.request("POST", "/", body=body, headers={"Content-Type": CT_PKCS10})
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("Retry-After")


def _honest(port: int, csrs: list[bytes], result: LoadResult, lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for csr in csrs:
            while True:
                try:
                    status, retry_after = _post(conn, csr)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    status, retry_after = 0, "1"
                if status == 503 or status == 0:
                    with lock:
                        result.retries += 1
                    time.sleep(float(retry_after or 1))
                    continue
                with lock:
                    if status == 200:
                        result.honest_ok += 1
                    else:
                        result.honest_failed.append(status)
                break
    finally:
        conn.close()


def _hostile(port: int, bodies: list[bytes], result: LoadResult, lock: threading.Lock) -> None:
    for body in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            status, _ = _post(conn, body)
        except (OSError, http.client.HTTPException):
            status = 0  # the connection was cut: counted, not retried (an attacker would not care)
        finally:
            conn.close()
        with lock:
            result.hostile_statuses[status] = result.hostile_statuses.get(status, 0) + 1


def hostile_bodies(count: int, *, simulator: Path, body_size: int = 4 << 20) -> list[bytes]:
    """``count`` hostile requests, a third of each kind: bodies of ``body_size`` bytes; CSRs carrying issue 8's
    42,000-entry CRL; CSRs whose CRL has one entry more than the Steward accepts (within the body limit)."""
    from enarx.steward.csr import MAX_CRL_ENTRIES

    finding = snp_csrs(simulator, 1, [many_entry_crl(42_000)])[0]
    over_cap = snp_csrs(simulator, 1, [many_entry_crl(MAX_CRL_ENTRIES + 1)])[0]
    kinds = [b"\x30" * body_size, finding, over_cap]
    return [kinds[i % 3] for i in range(count)]


def run_load(port: int, honest: list[list[bytes]], hostile: list[bytes] = (), hostile_clients: int = 8) -> LoadResult:
    """Run one honest client per list in ``honest`` (and ``hostile_clients`` sharing ``hostile``) to the end."""
    result, lock = LoadResult(), threading.Lock()
    hostile_threads = [threading.Thread(target=_hostile, args=(port, hostile[i::hostile_clients], result, lock))
                       for i in range(hostile_clients) if hostile[i::hostile_clients]]
    honest_threads = [threading.Thread(target=_honest, args=(port, csrs, result, lock)) for csrs in honest]
    for thread in hostile_threads:
        thread.start()
    started = time.perf_counter()
    for thread in honest_threads:
        thread.start()
    for thread in honest_threads:
        thread.join()
    result.honest_seconds = time.perf_counter() - started
    for thread in hostile_threads:
        thread.join()
    return result


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")

