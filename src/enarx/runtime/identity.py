"""The keep's identity: a private key that never leaves the keep and the certificate chain that names it.

Without a Steward it is self-signed (``CN=localhost``, as Enarx does); the Steward flow replaces the chain
with one issued by the Steward after attestation. TLS listeners present it; TLS connections present it as
their client certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class KeepIdentity:
    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)  # leaf first

    @classmethod
    def generate(cls, curve: ec.EllipticCurve | None = None) -> KeepIdentity:
        """A fresh key (P-256 unless told otherwise; SNP keeps use P-384) with no certificate yet."""
        return cls(ec.generate_private_key(curve or ec.SECP256R1()))

    def self_sign(self, days: int = 365) -> KeepIdentity:
        """Enarx's fallback certificate: CN=localhost, 16 random serial bytes, one year, server+client auth."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(int.from_bytes(os.urandom(16), "big") >> 1)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.IPAddress(ipaddress.ip_address("::1"))]), False)
            .sign(self.key, hashes.SHA256() if isinstance(self.key.curve, ec.SECP256R1) else hashes.SHA384())
        )
        self.chain = [cert]
        return self

    def spki_der(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def load_into(self, ctx: ssl.SSLContext) -> None:
        """Give the key and chain to an SSL context (Python's ssl only loads them from files: a private
        temporary directory, removed at once)."""
        with tempfile.TemporaryDirectory(prefix="enarx-identity-") as tmp:
            os.chmod(tmp, 0o700)
            key_path = os.path.join(tmp, "key.pem")
            chain_path = os.path.join(tmp, "chain.pem")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
            with open(chain_path, "wb") as fh:
                fh.writelines(cert.public_bytes(serialization.Encoding.PEM) for cert in self.chain)
            ctx.load_cert_chain(chain_path, key_path)
