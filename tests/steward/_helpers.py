"""Helpers for the Steward tests: CSR construction, simulated SNP evidence, in-process servers."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation import der
from enarx.attestation.binding import report_data_for
from enarx.attestation.model import Tee
from enarx.attestation.policy import Policy
from enarx.attestation.verifier import parse_time
from enarx.steward.csr import OID_EXTENSION_REQUEST, OID_SNP
from enarx.steward.issuer import CertificateAuthority
from enarx.steward.loadgen import many_entry_crl  # noqa: F401 - re-exported for the tests
from enarx.steward.service import Steward, StewardConfig, load_insecure_anchors

SGX_CSR = "icelake.signed.tcb.crl.multi.xeon.csr"
SGX_AT = parse_time("2023-01-27T11:33:44Z")
MILAN_AT = parse_time("2022-09-30T12:48:56Z")
SGX_ADVISORIES = ["INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615", "INTEL-SA-00657"]
# The corpus SGX CSR is out of date and, as Enarx's SGX envelope has no field for it, carries no QE identity;
# these tests' Steward holds none either. The old default policy let a missing QE identity pass: the new one
# requires it, so the policy that accepts this CSR says both relaxations explicitly.
PERMISSIVE = {"tcb_statuses": ["UpToDate", "OutOfDate"], "advisories": SGX_ADVISORIES,
              "allow_missing_collateral": ["qe_identity"]}
_ECDSA = {"secp256r1": ("1.2.840.10045.4.3.2", hashes.SHA256), "secp384r1": ("1.2.840.10045.4.3.3", hashes.SHA384)}

CA = CertificateAuthority.generate("steward-test", not_before=datetime(2022, 1, 1).astimezone())


def spki(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_csr(key: Any, extensions: list[tuple[str, bytes]] = (), *, attributes: list[bytes] | None = None,
             tamper: bool = False, critical: bool = False) -> bytes:
    """A DER PKCS#10 request signed by ``key`` with one extensionRequest holding ``extensions``."""
    if attributes is None:
        exts = [der.extension(oid, value, critical) for oid, value in extensions]
        attributes = [der.seq(der.oid(OID_EXTENSION_REQUEST), der.set_of(der.seq(*exts)))] if exts else []
    info = der.seq(der.integer(0), der.seq(), spki(key), der.tlv(0xA0, b"".join(attributes)))
    sig_oid, hash_cls = _ECDSA[key.curve.name]
    signer = ec.generate_private_key(key.curve) if tamper else key  # tamper: signed by another key
    signature = signer.sign(info, ec.ECDSA(hash_cls()))
    return der.seq(info, der.seq(der.oid(sig_oid)), der.bit_string(signature))


def crl_list(crls: list[bytes], url: str = "https://kdsintf.amd.com/vcek/v1/Milan/crl") -> bytes:
    return der.seq(der.seq(*(der.seq(der.utf8(url), c) for c in crls)))


def snp_csr(key: Any | None = None, *, bind: Any | None = None, nonce: bytes | None = None,
            bound_nonce: bytes | None | str = "same", **sim_kw: Any) -> tuple[bytes, Any]:
    """A CSR carrying simulated SNP evidence whose report_data binds ``bind`` (default: the CSR key) and
    ``bound_nonce`` (default: ``nonce``, which the CSR carries in its nonce extension when given)."""
    from enarx.attestation.freshness import OID_NONCE
    from enarx.attestation.simulate.snp import simulate_snp

    key = key or ec.generate_private_key(ec.SECP384R1())
    bound = nonce if bound_nonce == "same" else bound_nonce
    sim = simulate_snp(report_data=report_data_for(spki(bind or key), Tee.SNP, bound), **sim_kw)
    evidence = der.seq(der.seq(sim.endorsement_cert, crl_list(sim.crls)), der.octet_string(sim.report))
    extensions = [(OID_SNP, evidence)] + ([(OID_NONCE, der.octet_string(nonce))] if nonce is not None else [])
    return make_csr(key, extensions), sim


def anchor_file(tmp_path: Path, sim: Any) -> Path:
    path = tmp_path / "sim-anchor.pem"
    path.write_bytes(sim.chain_pem)
    return path


def steward(*, policy: dict[str, Any] | None = None, at: datetime | None = None, anchors: list[Path] = (),
            kvm: bool = False, name: str = "test", validity: timedelta = timedelta(days=28)) -> Steward:
    extra, intermediates = load_insecure_anchors(list(anchors))
    return Steward(StewardConfig(ca=CA, policy=Policy.from_dict(policy) if policy else Policy.default(),
                                 policy_name=name, verify_at=at, accept_kvm=kvm, insecure_anchors=extra,
                                 insecure_intermediates=intermediates, validity=validity, sans=["keep.test"]))


def split_chain(body: bytes) -> list[x509.Certificate]:
    """Parse a DER ``SEQUENCE OF Certificate``."""
    from asn1crypto import core
    from asn1crypto import x509 as ax

    class Certs(core.SequenceOf):
        _child_spec = ax.Certificate

    return [x509.load_der_x509_certificate(c.dump()) for c in Certs.load(body)]


def chains_to(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(ca)
        return True
    except Exception:  # noqa: BLE001
        return False


def split_bundle(body: bytes) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """Parse ``SEQUENCE { chain SEQUENCE OF Certificate, issued SEQUENCE OF Certificate }``."""
    from asn1crypto import core
    from asn1crypto import x509 as ax

    class Certs(core.SequenceOf):
        _child_spec = ax.Certificate

    class Bundle(core.Sequence):
        _fields = [("chain", Certs), ("issued", Certs)]  # noqa: RUF012

    parsed = Bundle.load(body)
    return ([x509.load_der_x509_certificate(c.dump()) for c in parsed["chain"]],
            [x509.load_der_x509_certificate(c.dump()) for c in parsed["issued"]])


def crl_heavy_csr(crls: list[bytes]) -> bytes:
    """A well-formed SEV-SNP CSR (simulated evidence) whose CrlList carries ``crls``."""
    from enarx.attestation.simulate.snp import simulate_snp

    key = ec.generate_private_key(ec.SECP384R1())
    sim = simulate_snp(report_data=report_data_for(spki(key), Tee.SNP))
    evidence = der.seq(der.seq(sim.endorsement_cert, crl_list(crls)), der.octet_string(sim.report))
    return make_csr(key, [(OID_SNP, evidence)])


def steward_process(*args: str) -> tuple[Any, int]:
    """The real ``enarx steward serve --addr 127.0.0.1 --port 0 ARGS…``, and the port it announced.

    Its stderr (one JSON line per decision) is read on a thread into ``proc.log_lines``: an unread pipe
    would fill up and stall the server."""
    import re
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen([sys.executable, "-m", "enarx", "steward", "serve", "--addr", "127.0.0.1", "--port", "0",
                             *args], stderr=subprocess.PIPE)
    proc.log_lines = []
    for line in proc.stderr:
        proc.log_lines.append(line.decode())
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line.decode())
        if found:
            threading.Thread(target=lambda: proc.log_lines.extend(x.decode() for x in proc.stderr),
                             daemon=True).start()
            return proc, int(found.group(1))
    proc.wait(10)
    raise RuntimeError(f"the Steward did not start (exit status {proc.returncode}): {''.join(proc.log_lines)}")
