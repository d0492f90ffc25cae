"""Simulated SEV-SNP evidence for keeps without hardware, from a persistent test PKI.

The test ARK/ASK live in a directory (default ``$ENARX_CACHE_DIR/simulator/snp``, created on first use) so
that a Steward can be told to trust that one test root (``--insecure-trust-anchor DIR/ark.pem``). Real
vendor roots never trust it. The simulated launch measurement is SHA-384 of the workload module, standing
in for what the hardware would measure.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from enarx.errors import KeepError
from enarx.runtime.attest.evidence import OID_SNP, EvidenceSource, snp_extension

_KEYS = ("ark", "ask", "asvk")


def load_or_create_snp_pki(directory: Path, product: str = "Milan"):
    """The test PKI stored in ``directory`` (keys PKCS#8 PEM, certificates DER), made on first use."""
    from enarx.attestation.simulate.snp import SnpTestPki

    if all((directory / f"{k}.key").exists() and (directory / f"{k}.der").exists() for k in _KEYS):
        keys = {k: serialization.load_pem_private_key((directory / f"{k}.key").read_bytes(), None) for k in _KEYS}
        certs = {k: (directory / f"{k}.der").read_bytes() for k in _KEYS}
        return SnpTestPki(product, keys["ark"], keys["ask"], keys["asvk"], certs["ark"], certs["ask"],
                          certs["asvk"])
    pki = SnpTestPki.create(product, fresh_keys=True)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for k in _KEYS:
        key = getattr(pki, f"{k}_key")
        path = directory / f"{k}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        (directory / f"{k}.der").write_bytes(getattr(pki, k))
    (directory / "ark.pem").write_bytes(pki.ark_pem)
    (directory / "chain.pem").write_bytes(pki.chain_pem("vcek"))
    return pki


class SimulatedSnpEvidence(EvidenceSource):
    technology = "sev-snp"
    simulated = True

    def __init__(self, pki_dir: Path, measurement: bytes):
        self.pki_dir = pki_dir
        self.measurement = measurement

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        from enarx.attestation.simulate.snp import simulate_snp

        try:
            pki = load_or_create_snp_pki(self.pki_dir)
        except (OSError, ValueError) as exc:
            raise KeepError(f"cannot use the SEV-SNP simulator PKI in {self.pki_dir}: {exc}") from None
        sim = simulate_snp(report_data=report_data, measurement=self.measurement, pki=pki)
        url = f"https://kdsintf.amd.com/vcek/v1/{pki.product}/crl"
        return OID_SNP, snp_extension(sim.endorsement_cert, sim.report, [(url, der) for der in sim.crls])
