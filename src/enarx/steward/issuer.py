"""The Steward CA: loading or generating it, and issuing certificates that carry verified claims.

Claims extension (non-critical), OID ``1.3.6.1.4.1.58270.2.1``; its ``extnValue`` is a DER
``UTF8String`` holding compact JSON with sorted keys::

    {"version": 1, "tee": "sgx"|"sev-snp"|"tdx"|"kvm", "measurements": {...}, "signer": {...},
     "svns": {...}, "tcb_status": "UpToDate"|…, "advisory_ids": [...], "debug": false,
     "policy": "<policy name>", "verified_at": "<ISO 8601>", "collateral_expiry": "<ISO 8601>"|null,
     "test_anchor": false, "insecure": false}

``insecure`` is true for KVM/nil keeps and for evidence that chained to an ``--insecure-trust-anchor``.
A keep that declared itself not isolated (:mod:`enarx.isolation`) also gets
``"isolation": "process, no isolation"`` or ``"emulated, no isolation"``, and ``insecure`` true.
Issued certificates: random UUIDv4 serial, empty subject (the CSR subject is not attested and is
ignored), the CSR key, SubjectAltName DNS = ``--san`` values, EKU serverAuth+clientAuth,
BasicConstraints CA=false, validity ``[at, min(at + validity, collateral expiry, CA notAfter)]``.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from enarx.attestation.der import utf8
from enarx.errors import EnarxError

OID_CLAIMS = "1.3.6.1.4.1.58270.2.1"
DEFAULT_VALIDITY = timedelta(days=28)


class CaError(EnarxError):
    """The CA key/certificate cannot be loaded, written, or do not match."""


@dataclass
class CertificateAuthority:
    """The Steward's signing identity."""

    key: Any  # cryptography private key
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    @classmethod
    def load(cls, key_path: str | Path, crt_path: str | Path) -> CertificateAuthority:
        """A PEM (PKCS#8 or traditional) key and its PEM certificate; they must match."""
        try:
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(Path(crt_path).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise CaError(f"cannot load CA: {exc}") from None
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, pub) != cert.public_key().public_bytes(
                serialization.Encoding.DER, pub):
            raise CaError("CA key does not match the CA certificate")
        return cls(key, cert)

    @classmethod
    def generate(cls, name: str, *, not_before: datetime | None = None, days: int = 365) -> CertificateAuthority:
        """A fresh P-256 self-signed CA ``CN=<name>`` (keyCertSign, CA pathlen 0, both critical)."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = (not_before or datetime.now(UTC)) - timedelta(hours=1)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(max(start, datetime.now(UTC)) + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def write(self, directory: str | Path, *, force: bool = False) -> tuple[Path, Path]:
        """Save ``ca.key`` (PKCS#8 PEM, mode 0600) and ``ca.crt`` (PEM) in ``directory`` (made 0700 if absent).

        Each file is first written in full under a fresh name (``O_CREAT|O_EXCL|O_NOFOLLOW``, so neither a
        planted symlink nor an existing file's mode is ever used), then moved into place: without ``force``
        with ``link``, which refuses an existing name (file or symlink); with ``force`` with ``rename``,
        which replaces the name itself — a symlink there is replaced, its target never touched.
        """
        key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        return write_key_pair(Path(directory), {"ca.key": (key_pem, 0o600), "ca.crt": (self.pem, 0o644)},
                              force=force)

    def _hash(self) -> Any:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return hashes.SHA384() if self.key.curve.key_size >= 384 else hashes.SHA256()
        if isinstance(self.key, rsa.RSAPrivateKey):
            return hashes.SHA256()
        return None  # Ed25519 / Ed448

    def not_after_for(self, at: datetime, validity: timedelta, collateral_expiry: datetime | None) -> datetime:
        """``min(at + validity, collateral expiry, CA notAfter)``."""
        limits = [at + validity, self.not_after]
        if collateral_expiry is not None:
            limits.append(collateral_expiry)
        return min(limits)

    def issue(self, public_key: Any, *, at: datetime, not_after: datetime, claims: dict[str, Any],
              sans: list[str] = (), copy_extensions: list[tuple[str, bytes]] = ()) -> x509.Certificate:
        """Sign a leaf for ``public_key`` valid ``[at, not_after]`` carrying ``claims``."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(uuid.uuid4().int)
            .not_valid_before(at)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_CLAIMS), claims_value(claims)),
                           critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                                            critical=False)
        for oid, value in copy_extensions:
            builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value),
                                            critical=False)
        return builder.sign(self.key, self._hash())


def claims_value(claims: dict[str, Any]) -> bytes:
    """The claims extension's DER value: a UTF8String of compact, key-sorted JSON."""
    return utf8(json.dumps(claims, sort_keys=True, separators=(",", ":")))


def read_claims(cert: x509.Certificate) -> dict[str, Any]:
    """The claims JSON from an issued certificate (``KeyError`` when absent)."""
    from asn1crypto import core

    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_CLAIMS))
    except x509.ExtensionNotFound:
        raise KeyError(OID_CLAIMS) from None
    return json.loads(core.UTF8String.load(ext.value.value).native)


def write_key_pair(directory: Path, files: dict[str, tuple[bytes, int]], *, force: bool) -> tuple[Path, ...]:
    """Write ``files`` (name → (bytes, mode)) into ``directory`` atomically; see :meth:`CertificateAuthority.write`.

    Refuses (``CaError``) when a name exists and ``force`` is false; nothing is written then.
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CaError(f"cannot use {directory} for the CA files: {exc.strerror or exc}") from None
    staged: list[tuple[str, str]] = []
    try:
        if not force:
            present = [name for name in files if _exists(name, dir_fd)]
            if present:
                raise CaError(f"{directory / present[0]} already exists: pass --force to replace the CA files, "
                              "or choose another --write-ca directory")
        for name, (data, mode) in files.items():
            temp = f".{name}.{secrets.token_hex(8)}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=dir_fd)
            staged.append((temp, name))
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), mode)  # the umask may have narrowed it; never wider than asked
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for temp, name in staged:
            if force:
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                continue
            try:
                os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                raise CaError(f"{directory / name} appeared while writing: pass --force to replace it") from None
            os.unlink(temp, dir_fd=dir_fd)
        staged.clear()
        os.fsync(dir_fd)
    except OSError as exc:
        raise CaError(f"cannot write the CA files in {directory}: {exc.strerror or exc}") from None
    finally:
        for temp, _name in staged:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError:
                pass
        os.close(dir_fd)
    return tuple(directory / name for name in files)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False
