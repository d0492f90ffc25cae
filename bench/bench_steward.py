"""Steward under load: N attestations of the real Enarx SGX CSR from C concurrent clients (HTTP on loopback).

Reports throughput, p99 latency, the server's peak RSS, and the throughput as a fraction of the crypto
floor measured in the same run: the signature checks one request needs (CSR self-signature, quote
attestation-key signature, QE report by the PCK, PCK → CA → root, TCB info) plus signing one certificate,
timed alone with `cryptography`.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("ENARX_CORPORA", ROOT.parent / "shared" / "corpora"))
CSR = CORPORA / "steward-csr" / "icelake.signed.tcb.crl.multi.xeon.csr"
AT = "2023-01-27T11:33:44Z"
POLICY = """tcb_statuses = ["UpToDate", "OutOfDate"]
advisories = ["INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615", "INTEL-SA-00657"]
"""


def crypto_floor(rounds: int = 300) -> float:
    """Requests per second if a request cost only its signature work (6 P-256 verifies + 1 sign)."""
    key = ec.generate_private_key(ec.SECP256R1())
    data = os.urandom(600)
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    start = time.perf_counter()
    for _ in range(rounds):
        for _ in range(6):
            public.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        key.sign(data, ec.ECDSA(hashes.SHA256()))
    return rounds / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(total: int = 2000, clients: int = 32) -> None:
    if not CSR.exists():
        print(f"steward bench skipped: {CSR} not found (set ENARX_CORPORA)")
        return
    body = CSR.read_bytes()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY)
        server = subprocess.Popen([sys.executable, "-m", "enarx", "steward", "serve", "--addr", "127.0.0.1",
                                   "--port", str(port), "--generate-ca", "bench", "--policy", str(policy),
                                   "--verify-at", AT], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            latencies: list[float] = []
            failures: list[int] = []
            counter = iter(range(total))
            lock = threading.Lock()

            def client() -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                while True:
                    with lock:
                        if next(counter, None) is None:
                            break
                    t = time.perf_counter()
                    conn.request("POST", "/", body=body, headers={"Content-Type": "application/pkcs10"})
                    response = conn.getresponse()
                    response.read()
                    elapsed = time.perf_counter() - t
                    with lock:
                        latencies.append(elapsed)
                        if response.status != 200:
                            failures.append(response.status)
                conn.close()

            start = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            rss = rss_peak_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    floor = crypto_floor()
    throughput = len(latencies) / wall
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    print("| Steward load | attestations | clients | failures | throughput | p99 latency | server peak RSS "
          "| crypto floor | ratio (target ≥ 0.3) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| real Enarx SGX CSR | {len(latencies)} | {clients} | {len(failures)} | {throughput:.0f}/s "
          f"| {p99:.0f} ms | {rss / 1024:.0f} MiB | {floor:.0f}/s | {throughput / floor:.2f} |")


if __name__ == "__main__":
    main()
