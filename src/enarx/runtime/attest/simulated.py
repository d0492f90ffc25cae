"""Simulated SEV-SNP, TDX and SGX evidence for keeps without hardware (``--simulate-tee``).

The runtime only asks for evidence here; the test PKIs and everything they issue live in
:mod:`enarx.attestation.simulate` (see :class:`~enarx.attestation.simulate.persistent.SimulatorPki` for the
directory a Steward is told to trust). Simulated evidence is always labelled (``simulated = True``; a
Steward marks what it certifies from a test anchor), and it is refused outright in a confidential guest:
a keep on SEV-SNP or TDX hardware attests with the hardware's evidence, never with the simulator's.

What each simulated keep sends is what a real one sends: SEV-SNP the VCEK and the ARK CRL; SGX the quote,
its CRLs and TCB info in Enarx's envelope (which has no field for a QE identity: the Steward holds it); TDX
the quote alone (the Steward holds the TCB info, QE identity and CRLs: ``--collateral``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from enarx.attestation.envelope import OID_SGX, OID_SNP, OID_TDX, intel_extension, snp_extension
from enarx.errors import KeepError
from enarx.runtime.attest.evidence import SEV_GUEST_DEVICE, TSM_REPORT_ROOT, EvidenceSource

# The presence of any of these means the keep runs in a confidential guest.
GUEST_INTERFACES = (SEV_GUEST_DEVICE, "/dev/tdx_guest", "/dev/tdx-guest", TSM_REPORT_ROOT)
INTEL_ROOT_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
INTEL_PCK_CRL_URL = "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der"


def refuse_on_hardware(interfaces: tuple[str, ...] = GUEST_INTERFACES) -> None:
    """A keep in an SEV-SNP or TDX guest never attests with simulated evidence."""
    present = [p for p in interfaces if os.path.exists(p)]
    if present:
        raise KeepError(f"--simulate-tee refused: this keep runs in a confidential guest ({present[0]} exists) and "
                        "attests with the hardware's own evidence; drop --simulate-tee")


def simulated_source(tee: str, directory: Path, module_bytes: bytes | memoryview, *, host_data: bytes = b"",
                     interfaces: tuple[str, ...] = GUEST_INTERFACES) -> EvidenceSource:
    """The simulated evidence source for ``tee`` (``sev-snp``/``snp``, ``tdx``, ``sgx``); ``host_data`` is what
    the host bound at launch (:func:`enarx.runtime.hostdata.host_data`): SEV-SNP HOST_DATA, TDX MRCONFIGID;
    SGX has no launch-time host data. A value of the wrong width is refused, never padded: a relying party
    compares the whole field (the registry a TDX keep's MRCONFIGID with a tree's SHA-384)."""
    import hashlib

    refuse_on_hardware(interfaces)
    width = {"sev-snp": 32, "snp": 32, "tdx": 48}.get(tee)
    if host_data and width is not None and len(host_data) != width:
        raise KeepError(f"the {tee} launch data is {width} bytes, not {len(host_data)}: the host bound something "
                        "else than this keep's evidence can carry")
    if tee in ("sev-snp", "snp"):
        return SimulatedSnpEvidence(directory, hashlib.sha384(module_bytes).digest(), host_data)
    if tee in ("tdx", "sgx"):
        return SimulatedIntelEvidence(tee, directory, hashlib.sha384(module_bytes).digest(),
                                      hashlib.sha256(module_bytes).digest(), host_data)
    raise KeepError(f"cannot simulate {tee!r} evidence; supported: sev-snp, tdx, sgx")


def _pki(directory: Path):
    from enarx.attestation.simulate.persistent import SimulatorPki

    return SimulatorPki(directory)


class SimulatedSnpEvidence(EvidenceSource):
    technology = "sev-snp"
    simulated = True

    def __init__(self, pki_dir: Path, measurement: bytes, host_data: bytes = b""):
        self.pki_dir = pki_dir  # the simulator directory (see SimulatorPki)
        self.measurement = measurement
        self.host_data = host_data  # what the host bound at launch (a deployed tree's digest, a publisher key)

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        from enarx.attestation.simulate.snp import simulate_snp

        try:
            pki = _pki(self.pki_dir).snp()
        except (OSError, ValueError) as exc:
            raise KeepError(f"cannot use the SEV-SNP simulator PKI in {self.pki_dir}: {exc}") from None
        # the ARK CRL is issued now, like one fetched just before attesting: a Steward refuses a CRL older than
        # the one it holds (`enarx attest simulate pki` wrote that one)
        now = datetime.now(UTC)
        sim = simulate_snp(report_data=report_data, measurement=self.measurement, host_data=self.host_data, pki=pki,
                           crl_this_update=now - timedelta(seconds=5))
        url = f"https://kdsintf.amd.com/vcek/v1/{pki.product}/crl"
        return OID_SNP, snp_extension(sim.endorsement_cert, sim.report, [(url, der) for der in sim.crls])


class SimulatedIntelEvidence(EvidenceSource):
    """A simulated TDX or SGX quote, with what a real keep of that kind sends beside it."""

    simulated = True

    def __init__(self, technology: str, pki_dir: Path, module_digest_384: bytes, module_digest_256: bytes,
                 host_data: bytes = b""):
        self.technology = technology
        self.pki_dir = pki_dir
        self.mrtd = module_digest_384
        self.mrenclave = module_digest_256
        self.host_data = host_data  # TDX: MRCONFIGID (48 bytes, or none); SGX has no launch-time host data

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx

        try:
            pki = _pki(self.pki_dir).intel()
        except (OSError, ValueError) as exc:
            raise KeepError(f"cannot use the Intel simulator PKI in {self.pki_dir}: {exc}") from None
        if self.technology == "tdx":
            sim = simulate_tdx(report_data=report_data, mrtd=self.mrtd, pki=pki, include_tcb_info=False,
                               include_qe_identity=False, include_crls=False,
                               mrconfigid=self.host_data or bytes(48))
            return OID_TDX, intel_extension(sim.quote, [], [], b"")
        sim = simulate_sgx(report_data=report_data, mrenclave=self.mrenclave, pki=pki, include_qe_identity=False)
        crls = [(INTEL_ROOT_CRL_URL, sim.files["root_ca.crl.der"]), (INTEL_PCK_CRL_URL, sim.files["pck_platform.crl.der"])]
        tcb_certs = [pki.tcb.public_bytes(serialization.Encoding.DER), pki.root.public_bytes(serialization.Encoding.DER)]
        return OID_SGX, intel_extension(sim.quote, crls, tcb_certs, sim.files["tcbinfo.json"])
