"""Helpers for the key broker tests: simulated keeps, a loopback OIDC issuer, a running broker."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from enarx.attestation import roots
from enarx.attestation.collateral import from_ders
from enarx.attestation.model import Tee
from enarx.attestation.simulate.intel import IntelTestPki, simulate_tdx
from enarx.attestation.simulate.snp import default_pki, simulate_snp
from enarx.kbs.app import create_app
from enarx.kbs.evidence import build_tee_evidence
from enarx.kbs.service import Broker, BrokerConfig
from enarx.kbs.store import ResourceStore
from enarx.packaging import keys, seal
from enarx.steward.server import BackgroundServer

MEASUREMENT = hashlib.sha384(b"the keep image the publisher expects").digest()
OTHER_MEASUREMENT = hashlib.sha384(b"some other image").digest()
INTEL_PKI = IntelTestPki.create(datetime(2020, 1, 1, tzinfo=UTC), datetime(2045, 1, 1, tzinfo=UTC))


def package_policy(tee: str, measurement: bytes = MEASUREMENT, extra: str = "") -> str:
    name = "measurement" if tee == "snp" else "mrtd"
    tees = "sev-snp" if tee == "snp" else "tdx"
    return f'tees = ["{tees}"]\n{extra}\n[measurements.{name}]\nallow = ["{measurement.hex()}"]\n'


class SimulatedKeep:
    """A keep without hardware: simulated SNP or TDX evidence over whatever report_data it is asked for."""

    def __init__(self, tee: str, measurement: bytes = MEASUREMENT, **fields: Any):
        self.tee = tee
        self.measurement = measurement
        self.fields = fields
        self.last_report_data: bytes | None = None

    def evidence_for(self, report_data: bytes) -> dict[str, Any]:
        self.last_report_data = report_data
        if self.tee == "snp":
            sim = simulate_snp(report_data=report_data, measurement=self.measurement, **self.fields)
            return build_tee_evidence(Tee.SNP, sim.report, from_ders([sim.endorsement_cert], sim.crls))
        sim = simulate_tdx(report_data=report_data, mrtd=self.measurement, pki=INTEL_PKI, **self.fields)
        return build_tee_evidence(Tee.TDX, sim.quote, sim.collateral)


def simulator_anchors():
    """The built-in roots plus the two simulator roots (as --insecure-trust-anchor would)."""
    snp = default_pki()
    from cryptography import x509

    return roots.builtin_anchors([x509.load_der_x509_certificate(snp.ark), INTEL_PKI.root])


def simulator_pool():
    return from_ders([default_pki().ask, default_pki().asvk], source="test")


class OidcIssuer:
    """A real OIDC issuer on loopback: discovery document and JWKS, RS256 tokens."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})

        async def discovery(request):
            return JSONResponse({"issuer": self.url, "jwks_uri": self.url + "/jwks"})

        async def jwks(request):
            return JSONResponse({"keys": [{**self.key.as_dict(private=False), "kid": "k1", "alg": "RS256"}]})

        app = Starlette(routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks)])
        self.server = BackgroundServer(app).start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def token(self, sub: str, audience: str = "enarx-kbs", *, expired: bool = False, issuer: str | None = None) -> str:
        now = int(time.time())
        claims = {"iss": issuer or self.url, "sub": sub, "aud": audience, "iat": now - 600,
                  "exp": now - 120 if expired else now + 300}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)

    def stop(self) -> None:
        self.server.stop()


def make_broker(tmp: Path, issuer: OidcIssuer | None = None, *, policy=None, **kw) -> tuple[Broker, BackgroundServer]:
    from enarx.kbs import publisher

    config = BrokerConfig(anchors=simulator_anchors(), collateral=simulator_pool(), store=ResourceStore(tmp / "store"),
                          publishers=publisher.make(issuer.url if issuer else None, "enarx-kbs"), **kw)
    if policy is not None:
        config.policy = policy
    broker = Broker(config)
    return broker, BackgroundServer(create_app(broker)).start()


def sealed_package(tmp: Path, tee: str, resource: str, *, policy: str | None = None,
                   source: Path | None = None) -> tuple[seal.SealedPackage, Path]:
    """An encrypted package of ``source`` (default: a small fake module) and its publisher's public key."""
    key_path = tmp / f"publisher-{resource.replace('/', '_')}.key"
    if not key_path.exists():
        keys.generate_signing_key(key_path)
    if source is None:
        source = tmp / "module.wasm"
        source.write_bytes(b"\0asm\x01\0\0\0 MARKER-secret-workload")
    out = tmp / f"pkg-{resource.replace('/', '_')}"
    pkg = seal.seal_package(source, out, sign_key=keys.load_signing_key(key_path),
                            policy=policy or package_policy(tee), resource=resource)
    return pkg, key_path.with_name(key_path.name + ".pub")


def at_least(delta_days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=delta_days)
