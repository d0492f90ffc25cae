"""The simulator's persistent test PKIs: one directory shared by ``enarx run --simulate-tee``,
``enarx attest simulate …`` and a Steward told to trust the simulator.

Layout of ``DIR`` (default ``$ENARX_CACHE_DIR/simulator``)::

    snp/            ARK → ASK / ASVK for Milan: ark.key ask.key asvk.key (PKCS#8, 0600), *.der,
                    ark.pem, chain.pem (ASK + ARK: for --insecure-trust-anchor / --trust-anchor)
    snp-genoa/ …    the same for Genoa and Turin, made when first asked for
    intel/          root → PCK platform CA, root → TCB signing: root/platform/tcb .key/.der, root.pem
    collateral/     what a Steward's --collateral needs to certify simulated keeps under the default policy
                    (written by ``enarx attest simulate pki DIR``): per TEE a signed TCB info and QE identity,
                    the Intel root CA and PCK platform CA CRLs, the TCB signing chain, and the ARK CRLs

Each hierarchy is created once (in a temporary directory renamed into place, so two processes racing to
create it end up sharing one) and reused afterwards. Only the keys are fake: vendor roots never verify
anything issued here, and a verifier trusts it only when these roots are configured explicitly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enarx.attestation.model import Tee

_SNP_FILES = ("ark", "ask", "asvk")
_INTEL_FILES = ("root", "platform", "tcb")


class SimulatorPki:
    """The persistent test PKIs in one directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    # -- hierarchies ---------------------------------------------------------------------------------
    def snp(self, product: str = "Milan") -> Any:
        """The SEV-SNP hierarchy for ``product`` (:class:`~.snp.SnpTestPki`), created on first use."""
        from enarx.attestation.simulate.snp import SnpTestPki, _product

        product = _product(product)
        where = self.snp_dir(product)

        def create(tmp: Path) -> None:
            pki = SnpTestPki.create(product, fresh_keys=True)
            for name in _SNP_FILES:
                _write_key(tmp / f"{name}.key", getattr(pki, f"{name}_key"))
                (tmp / f"{name}.der").write_bytes(getattr(pki, name))
            (tmp / "ark.pem").write_bytes(pki.ark_pem)
            (tmp / "chain.pem").write_bytes(pki.chain_pem("vcek"))

        _ensure(where, _SNP_FILES, create)
        keys = {n: _read_key(where / f"{n}.key") for n in _SNP_FILES}
        ders = {n: (where / f"{n}.der").read_bytes() for n in _SNP_FILES}
        return SnpTestPki(product, keys["ark"], keys["ask"], keys["asvk"], ders["ark"], ders["ask"], ders["asvk"])

    def intel(self) -> Any:
        """The Intel hierarchy (:class:`~.intel.IntelTestPki`), created on first use."""
        from enarx.attestation.simulate.intel import IntelTestPki

        where = self.directory / "intel"

        def create(tmp: Path) -> None:
            pki = IntelTestPki.create(datetime(2020, 1, 1, tzinfo=UTC), datetime(2045, 1, 1, tzinfo=UTC))
            for name in _INTEL_FILES:
                _write_key(tmp / f"{name}.key", getattr(pki, f"{name}_key"))
                (tmp / f"{name}.der").write_bytes(getattr(pki, name).public_bytes(serialization.Encoding.DER))
            (tmp / "root.pem").write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))

        _ensure(where, _INTEL_FILES, create)
        keys = [_read_key(where / f"{n}.key") for n in _INTEL_FILES]
        certs = [x509.load_der_x509_certificate((where / f"{n}.der").read_bytes()) for n in _INTEL_FILES]
        return IntelTestPki(*keys, *certs)

    def snp_dir(self, product: str) -> Path:
        return self.directory / ("snp" if product == "Milan" else f"snp-{product.lower()}")

    # -- what a Steward needs ----------------------------------------------------------------------------
    @property
    def collateral_dir(self) -> Path:
        return self.directory / "collateral"

    def anchor_files(self) -> list[Path]:
        """The files a Steward passes to ``--insecure-trust-anchor`` (existing hierarchies only)."""
        out = [self.snp_dir(p) / "chain.pem" for p in ("Milan", "Genoa", "Turin")]
        out.append(self.directory / "intel" / "root.pem")
        return [p for p in out if p.is_file()]

    def write_collateral(self, at: datetime | None = None, *, days: int = 30,
                         products: tuple[str, ...] = ("Milan",)) -> dict[str, Path]:
        """Write (replace) ``collateral/``: valid from an hour before ``at`` for ``days``."""
        from enarx.attestation.simulate.intel import platform_collateral
        from enarx.attestation.simulate.pki import RSA_PSS_SHA384, issue_crl
        from enarx.attestation.simulate.snp import _amd_name

        at = (at or datetime.now(UTC)).replace(microsecond=0)
        files: dict[str, bytes] = {}
        intel = self.intel()
        for tee in (Tee.SGX, Tee.TDX):
            files.update(platform_collateral(tee, intel, at, days=days))
        for product in products:
            pki = self.snp(product)
            files[f"ark-{product.lower()}.crl.der"] = issue_crl(
                issuer=_amd_name(f"ARK-{product}"), signing_key=pki.ark_key, algorithm=RSA_PSS_SHA384,
                this_update=at - timedelta(hours=1), next_update=at + timedelta(days=days))
        out = self.collateral_dir
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths = {}
        for name, data in files.items():
            tmp = out / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            tmp.replace(out / name)
            paths[name] = out / name
        return paths


def _ensure(where: Path, names: tuple[str, ...], create: Callable[[Path], None]) -> None:
    """Create the hierarchy in a temporary sibling and rename it into place (first writer wins)."""
    if all((where / f"{n}.key").is_file() and (where / f"{n}.der").is_file() for n in names):
        return
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{where.name}.", dir=where.parent))
    try:
        create(tmp)
        try:
            os.rename(tmp, where)
        except OSError:
            if not all((where / f"{n}.key").is_file() for n in names):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_key(path: Path, key: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _read_key(path: Path) -> Any:
    # keys this module wrote: OpenSSL's consistency check of an RSA-4096 key (about a second each) buys nothing
    return serialization.load_pem_private_key(path.read_bytes(), None, unsafe_skip_rsa_key_validation=True)
