"""Simulated SEV-SNP, TDX and SGX evidence for keeps without hardware, from persistent test PKIs.

The test hierarchies live in a directory (default ``$ENARX_CACHE_DIR/simulator``; ``snp/`` holds the test
ARK/ASK/ASVK, ``intel/`` the test Intel root, platform CA and TCB signer), created on first use, so that a
Steward can be told to trust exactly those test roots (``--insecure-trust-anchor DIR/snp/chain.pem`` or
``DIR/intel/root.pem``). Real vendor roots never trust them. The simulated measurement stands in for what
the hardware would measure: SHA-384 of the workload module (SNP measurement, TDX MRTD) or SHA-256 (SGX
MRENCLAVE).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from enarx.attestation.envelope import OID_SGX, OID_SNP, OID_TDX, intel_extension, snp_extension
from enarx.errors import KeepError
from enarx.runtime.attest.evidence import EvidenceSource

_KEYS = ("ark", "ask", "asvk")


def load_or_create_snp_pki(directory: Path, product: str = "Milan"):
    """The SEV-SNP test PKI in ``directory/snp`` (keys PKCS#8 PEM, certificates DER), made on first use."""
    from enarx.attestation.simulate.snp import SnpTestPki

    directory = directory / "snp"
    if all((directory / f"{k}.key").exists() and (directory / f"{k}.der").exists() for k in _KEYS):
        keys = {k: serialization.load_pem_private_key((directory / f"{k}.key").read_bytes(), None) for k in _KEYS}
        certs = {k: (directory / f"{k}.der").read_bytes() for k in _KEYS}
        return SnpTestPki(product, keys["ark"], keys["ask"], keys["asvk"], certs["ark"], certs["ask"],
                          certs["asvk"])
    pki = SnpTestPki.create(product, fresh_keys=True)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for k in _KEYS:
        _write_key(directory / f"{k}.key", getattr(pki, f"{k}_key"))
        (directory / f"{k}.der").write_bytes(getattr(pki, k))
    (directory / "ark.pem").write_bytes(pki.ark_pem)
    (directory / "chain.pem").write_bytes(pki.chain_pem("vcek"))
    return pki


class SimulatedSnpEvidence(EvidenceSource):
    technology = "sev-snp"
    simulated = True

    def __init__(self, pki_dir: Path, measurement: bytes, host_data: bytes = b""):
        self.pki_dir = pki_dir  # the simulator directory (the SNP hierarchy is in its snp/ subdirectory)
        self.measurement = measurement
        self.host_data = host_data  # what the host bound at launch (a deployed package's tree digest)

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        from enarx.attestation.simulate.snp import simulate_snp

        try:
            pki = load_or_create_snp_pki(self.pki_dir)
        except (OSError, ValueError) as exc:
            raise KeepError(f"cannot use the SEV-SNP simulator PKI in {self.pki_dir}: {exc}") from None
        sim = simulate_snp(report_data=report_data, measurement=self.measurement, host_data=self.host_data, pki=pki)
        url = f"https://kdsintf.amd.com/vcek/v1/{pki.product}/crl"
        return OID_SNP, snp_extension(sim.endorsement_cert, sim.report, [(url, der) for der in sim.crls])


def load_or_create_intel_pki(directory: Path):
    """The Intel test PKI in ``directory/intel`` (root, platform CA and TCB signer), made on first use."""
    from datetime import UTC, datetime

    from cryptography import x509

    from enarx.attestation.simulate.intel import IntelTestPki

    directory = directory / "intel"
    names = ("root", "platform", "tcb")
    if all((directory / f"{n}.key").exists() and (directory / f"{n}.der").exists() for n in names):
        keys = [serialization.load_pem_private_key((directory / f"{n}.key").read_bytes(), None) for n in names]
        certs = [x509.load_der_x509_certificate((directory / f"{n}.der").read_bytes()) for n in names]
        return IntelTestPki(*keys, *certs)  # type: ignore[arg-type]
    pki = IntelTestPki.create(datetime(2020, 1, 1, tzinfo=UTC), datetime(2045, 1, 1, tzinfo=UTC))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for n in names:
        _write_key(directory / f"{n}.key", getattr(pki, f"{n}_key"))
        (directory / f"{n}.der").write_bytes(getattr(pki, n).public_bytes(serialization.Encoding.DER))
    (directory / "root.pem").write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    return pki


def _write_key(path: Path, key) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


INTEL_ROOT_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
INTEL_PCK_CRL_URL = "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der"


class SimulatedIntelEvidence(EvidenceSource):
    """A simulated TDX or SGX quote plus its collateral (CRLs, TCB info and, for TDX, QE identity)."""

    simulated = True

    def __init__(self, technology: str, pki_dir: Path, module_digest_384: bytes, module_digest_256: bytes):
        self.technology = technology
        self.pki_dir = pki_dir
        self.mrtd = module_digest_384
        self.mrenclave = module_digest_256

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx

        try:
            pki = load_or_create_intel_pki(self.pki_dir)
        except (OSError, ValueError) as exc:
            raise KeepError(f"cannot use the Intel simulator PKI in {self.pki_dir}: {exc}") from None
        tdx = self.technology == "tdx"
        sim = (simulate_tdx(report_data=report_data, mrtd=self.mrtd, pki=pki) if tdx
               else simulate_sgx(report_data=report_data, mrenclave=self.mrenclave, pki=pki))
        crls = [(INTEL_ROOT_CRL_URL, sim.files["root_ca.crl.der"]), (INTEL_PCK_CRL_URL, sim.files["pck_platform.crl.der"])]
        tcb_certs = [pki.tcb.public_bytes(serialization.Encoding.DER), pki.root.public_bytes(serialization.Encoding.DER)]
        value = intel_extension(sim.quote, crls, tcb_certs, sim.files["tcbinfo.json"],
                                sim.files["qe_identity.json"] if tdx else None)
        return (OID_TDX if tdx else OID_SGX), value
