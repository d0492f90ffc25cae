"""Collateral loading: files and directories into a :class:`CollateralSet`, classified by *content*.

Offline-first: nothing here touches the network (see :mod:`enarx.attestation.cache` for fetching).
Accepted inputs, whatever their file names:

* PEM (one or many blocks): ``CERTIFICATE`` → certificates, ``X509 CRL`` → CRLs;
* DER: a certificate or a CRL;
* JSON: kept as raw bytes in ``json_documents`` (Intel signs the exact bytes of JSON members);
* ``path#field``: the PEM chain (or hex/PEM CRL) stored in ``field`` of the JSON file ``path``
  (``a.b`` walks nested objects), e.g. ``collateral.json#tcb_info_issuer_chain``;
* a directory: every regular file below it, sorted; files that are none of the above are skipped with a
  warning (a directory may hold READMEs), whereas an explicitly named file that is unrecognisable is an
  error.

Roots found here are never trust anchors: they only help build chains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from enarx.attestation.model import AttestationError, CollateralSet
from enarx.attestation.pki import Cert, CertificateFormatError, Crl, split_pem

MAX_FILE_SIZE = 16 << 20
MAX_FILES = 10_000


class CollateralError(AttestationError):
    """A collateral path that cannot be read or whose content is not recognisable collateral."""

    reason = "collateral-format"


#: Names of files a directory holds as collateral; another file there that is not collateral (the evidence
#: itself, a README) is skipped without a warning.
COLLATERAL_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der", ".crl", ".json"})


def load_collateral(paths: Iterable[str | Path]) -> CollateralSet:
    """Load every path (file, directory or ``file#field``) into one :class:`CollateralSet`."""
    out = CollateralSet()
    for spec in paths:
        out = out.merge(load_path(spec))
    return out


def load_path(spec: str | Path) -> CollateralSet:
    out = CollateralSet()
    text = str(spec)
    path = Path(text)
    if not path.exists() and "#" in text:
        file_part, _, fieldname = text.rpartition("#")
        _load_field(Path(file_part), fieldname, out)
        return out
    if path.is_dir():
        for count, child in enumerate(sorted(p for p in path.rglob("*") if p.is_file()), 1):
            if count > MAX_FILES:
                raise CollateralError(f"{path}: more than {MAX_FILES} files")
            _load_file(child, out, strict=False)
        return out
    if not path.exists():
        raise CollateralError(f"{path}: no such file or directory")
    _load_file(path, out, strict=True)
    return out


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_SIZE:
            raise CollateralError(f"{path}: {size} bytes is too large for collateral")
        return path.read_bytes()
    except OSError as exc:
        raise CollateralError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _load_file(path: Path, out: CollateralSet, *, strict: bool) -> None:
    data = _read(path)
    try:
        recognised = add_bytes(out, data, str(path))
    except CertificateFormatError as exc:
        if strict:
            raise CollateralError(f"{path}: {exc}") from None
        out.warnings.append(f"skipped {path}: {exc}")
        return
    if not recognised:
        if strict:
            raise CollateralError(f"{path}: not a certificate, CRL or JSON collateral document")
        if path.suffix.lower() in COLLATERAL_SUFFIXES:  # a broken download, not the evidence lying beside it
            out.warnings.append(f"skipped {path}: not a certificate, CRL or JSON collateral document")


def _load_field(path: Path, fieldname: str, out: CollateralSet) -> None:
    if not path.is_file():
        raise CollateralError(f"{path}: no such file (from {path}#{fieldname})")
    try:
        value: Any = json.loads(_read(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CollateralError(f"{path}: not JSON, so #{fieldname} cannot be taken from it: {exc}") from None
    for key in fieldname.split("."):
        if not isinstance(value, dict) or key not in value:
            raise CollateralError(f"{path}: no field {fieldname!r}")
        value = value[key]
    values = value if isinstance(value, list) else [value]
    source = f"{path}#{fieldname}"
    for item in values:
        if not isinstance(item, str):
            raise CollateralError(f"{source}: expected a PEM string, found {type(item).__name__}")
        data = item.encode()
        stripped = item.strip()
        if "-----BEGIN" not in item and stripped and all(c in "0123456789abcdefABCDEF" for c in stripped):
            data = bytes.fromhex(stripped) if len(stripped) % 2 == 0 else data
        try:
            recognised = add_bytes(out, data, source)
        except CertificateFormatError as exc:
            raise CollateralError(f"{source}: {exc}") from None
        if not recognised:
            raise CollateralError(f"{source}: not a PEM certificate chain or CRL")


def add_bytes(out: CollateralSet, data: bytes, source: str) -> bool:
    """Classify ``data`` by content and add it to ``out``; ``False`` when it is not collateral."""
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        try:
            json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return False
        out.json_documents.append((source, bytes(data)))
        out.sources.append(source)
        return True
    if b"-----BEGIN" in data:
        blocks = split_pem(data)
        used = False
        for label, der in blocks:
            if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
                add_certificate(out, der, source)
                used = True
            elif label == "X509 CRL":
                add_crl(out, der, source)
                used = True
        return used
    if data[:1] == b"\x30":
        try:
            add_certificate(out, data, source)
            return True
        except CertificateFormatError:
            pass
        try:
            add_crl(out, data, source)
            return True
        except CertificateFormatError:
            pass
        raise CertificateFormatError("DER that is neither a certificate nor a CRL")
    return False


def add_certificate(out: CollateralSet, der: bytes, source: str) -> Cert:
    """Check and add one DER certificate (kept as DER: verifiers parse through their own cache)."""
    cert = Cert.from_der(der)
    out.certificates.append(cert.der)
    out.sources.append(source)
    return cert


def add_crl(out: CollateralSet, der: bytes, source: str) -> Crl:
    crl = Crl.from_der(der)
    out.crls.append(crl.der)
    out.sources.append(source)
    return crl


def from_ders(certificates: Iterable[bytes] = (), crls: Iterable[bytes] = (), source: str = "memory") -> CollateralSet:
    """A :class:`CollateralSet` from DER blobs already in memory (simulator, caches, Steward CSRs)."""
    out = CollateralSet()
    for der in certificates:
        add_certificate(out, der, source)
    for der in crls:
        add_crl(out, der, source)
    return out


def der_of(item: Any) -> bytes:
    """DER bytes of a collateral item: bytes, a :class:`Cert`/:class:`Crl`, or a ``cryptography`` object."""
    if isinstance(item, (Cert, Crl)):
        return item.der
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    return item.public_bytes(serialization.Encoding.DER)


def certificates_of(collateral: CollateralSet | None) -> list[Cert]:
    """Every certificate in ``collateral`` as a :class:`Cert`, de-duplicated, in order."""
    if collateral is None:
        return []
    ders = dict.fromkeys(der_of(i) for i in [*collateral.certificates, *collateral.raw_certificates])
    return [Cert.from_der(der) for der in ders]


def crls_of(collateral: CollateralSet | None) -> list[Crl]:
    if collateral is None:
        return []
    ders = dict.fromkeys(der_of(i) for i in [*collateral.crls, *collateral.raw_crls])
    return [Crl.from_der(der) for der in ders]
