"""The broker against the review's attacks, beyond the review's own tests: no state for anonymous clients,
keys released only to keeps bound to their package, namespaces, test anchors, hostile bodies, redirects."""
# ruff: noqa: F811 - the broker and issuer fixtures are test_kbs's, imported by name

from __future__ import annotations

import base64
import json

import httpx
import pytest
from _kbs import SimulatedKeep, package_policy, sealed_package
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route
from test_kbs import broker, issuer, register  # noqa: F401

from enarx.kbs import evidence, teekey
from enarx.kbs.client import KbsClient, KbsError
from enarx.steward.server import BackgroundServer

AUTH = {"version": "0.1.1", "tee": "snp", "extra-params": ""}


def attest_raw(http: httpx.Client, keep: SimulatedKeep, runtime_extra: dict | None = None, *, tee: str = "snp",
               public: dict | None = None) -> httpx.Response:
    challenge = http.post("/kbs/v0/auth", json={**AUTH, "tee": tee}).json()
    if public is None:
        _, public = teekey.generate()
    runtime = {"nonce": challenge["nonce"], "tee-pubkey": public, **(runtime_extra or {})}
    return http.post("/kbs/v0/attest", json={"runtime-data": runtime,
                                             "tee-evidence": keep.evidence_for(evidence.report_data_for(runtime))})


def test_anonymous_clients_leave_no_state_behind(broker):
    """/auth stores nothing, and neither does an /attest whose evidence does not verify or bind."""
    http = httpx.Client(base_url=broker.url)
    for _ in range(200):
        http.post("/kbs/v0/auth", json=AUTH)
        http.post("/kbs/v0/attest", json={"runtime-data": {"nonce": "x", "tee-pubkey": {}}, "tee-evidence": {}})
    wrong_binding = SimulatedKeep("snp")
    challenge = http.post("/kbs/v0/auth", json=AUTH).json()
    _, public = teekey.generate()
    r = http.post("/kbs/v0/attest", json={"runtime-data": {"nonce": challenge["nonce"], "tee-pubkey": public},
                                          "tee-evidence": wrong_binding.evidence_for(bytes(64))})
    assert r.status_code == 403 and r.json()["reason"] == "binding"
    assert broker.sessions._redeemed == {} and broker.sessions._attested == {}
    # and an honest keep attests as usual; only now is something remembered
    assert attest_raw(http, SimulatedKeep("snp")).status_code == 200
    assert len(broker.sessions._redeemed) == 1


def test_a_session_cookie_is_bound_to_its_tee_and_its_spelling(broker):
    http = httpx.Client(base_url=broker.url)
    http.post("/kbs/v0/auth", json=AUTH)
    cookie = http.cookies["kbs-session-id"]
    tee, _, nonce = cookie.partition(".")
    assert tee == "snp"
    for forged in (f"tdx.{nonce}", f"snp.{nonce}=", f"snp.{nonce[:-1]}", "snp.", ""):
        r = httpx.post(f"{broker.url}/kbs/v0/attest", json={"runtime-data": {}}, cookies={"kbs-session-id": forged})
        assert r.status_code == 401, forged
        assert r.json()["reason"] in ("nonce-invalid", "no-session"), forged


@pytest.mark.parametrize("tee", ["snp", "tdx"])
def test_the_key_goes_only_to_a_keep_bound_to_its_package(tmp_path, broker, issuer, tee):
    pkg, _ = sealed_package(tmp_path, tee, f"alice/{tee}-bound/v1")
    other, _ = sealed_package(tmp_path, tee, f"alice/{tee}-other/v1")
    assert register(broker, issuer, pkg).status_code == 201
    # the keep verified another manifest (runtime-data), or none at all
    for package in (other.manifest.digest, None):
        client = KbsClient(broker.url)
        client.attest(tee, SimulatedKeep(tee).evidence_for, package=package)
        with pytest.raises(KbsError) as exc:
            client.resource(pkg.manifest.resource)
        assert exc.value.status == 403 and exc.value.reason == "package-binding"
        assert pkg.manifest.digest in str(exc.value)
    # a Trustee client sends no enarx-package: the host bound the manifest digest at launch instead
    trustee_keep = SimulatedKeep(tee, bound=bytes.fromhex(pkg.manifest.digest))
    client = KbsClient(broker.url)
    client.attest(tee, trustee_keep.evidence_for)
    assert client.resource(pkg.manifest.resource) == pkg.content_key
    assert client.resource(pkg.manifest.resource, use_token=True) == pkg.content_key
    # runtime-data names the keep's own verified package and overrides what the host bound
    client = KbsClient(broker.url)
    client.attest(tee, trustee_keep.evidence_for, package=other.manifest.digest)
    with pytest.raises(KbsError):
        client.resource(pkg.manifest.resource)


def test_a_malformed_package_member_is_a_400(broker):
    http = httpx.Client(base_url=broker.url)
    r = attest_raw(http, SimulatedKeep("snp"), {"enarx-package": "not a digest"})
    assert r.status_code == 400 and "enarx-package" in r.json()["detail"]


def test_simulated_evidence_gets_no_key_unless_the_package_allows_test_anchors(tmp_path, broker, issuer):
    pkg, _ = sealed_package(tmp_path, "snp", "alice/strict/v1", policy=package_policy("snp", test_anchors=False))
    assert register(broker, issuer, pkg).status_code == 201
    client = KbsClient(broker.url)
    client.attest("snp", SimulatedKeep("snp").evidence_for, package=pkg.manifest.digest)
    with pytest.raises(KbsError) as exc:
        client.resource(pkg.manifest.resource)
    assert exc.value.reason == "package-policy" and "policy.allow_test_anchors" in str(exc.value)
    assert "test trust anchor" in str(exc.value)


def test_publishers_register_only_in_their_own_namespace(tmp_path, broker, issuer):
    pkg, _ = sealed_package(tmp_path, "snp", "alice/app/v1")
    squat = register(broker, issuer, pkg, sub="mallory")
    assert squat.status_code == 403 and squat.json()["reason"] == "not-owner"
    assert "mallory/<type>/<tag>" in squat.json()["detail"]
    odd = register(broker, issuer, pkg, sub="auth0|1234")  # a subject that is no valid repository name
    assert odd.status_code == 403 and "namespace claim" in odd.json()["detail"]
    assert register(broker, issuer, pkg, sub="alice").status_code == 201


def test_a_p521_tee_key_works(tmp_path, broker, issuer):
    from joserfc.jwk import ECKey

    pkg, _ = sealed_package(tmp_path, "snp", "alice/p521/v1")
    assert register(broker, issuer, pkg).status_code == 201
    private = ECKey.generate_key("P-521")
    public = {k: v for k, v in private.as_dict(private=False).items() if k in ("kty", "crv", "x", "y")}
    http = httpx.Client(base_url=broker.url)
    r = attest_raw(http, SimulatedKeep("snp"), {"enarx-package": pkg.manifest.digest}, public=public)
    assert r.status_code == 200, r.text
    wrapped = http.get(f"/kbs/v0/resource/{pkg.manifest.resource}").json()
    assert teekey.unwrap(wrapped, private) == pkg.content_key


FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                   max_size=3), max_leaves=10)


@FUZZ
@given(body=_values | st.fixed_dictionaries({}, optional={"version": _values | st.just("0.1.1"),
                                                           "tee": _values | st.sampled_from(["snp", "tdx"]),
                                                           "extra-params": _values}))
def test_fuzz_auth_bodies_get_200_or_4xx(broker, body):
    r = httpx.post(f"{broker.url}/kbs/v0/auth", json=body)
    assert r.status_code == 200 or (400 <= r.status_code < 500 and r.json()["detail"]), r.text


@FUZZ
@given(runtime=st.dictionaries(st.text(max_size=8), _values | st.text(alphabet=st.characters(), max_size=8),
                               max_size=4))
def test_fuzz_runtime_data_gets_4xx(broker, runtime):
    http = httpx.Client(base_url=broker.url)
    challenge = http.post("/kbs/v0/auth", json=AUTH).json()
    runtime = {"nonce": challenge["nonce"], **runtime}
    r = http.post("/kbs/v0/attest", content=json.dumps({"runtime-data": runtime, "tee-evidence": {}}),
                  headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text


def test_a_lone_surrogate_in_runtime_data_is_a_400(broker):
    http = httpx.Client(base_url=broker.url)
    challenge = http.post("/kbs/v0/auth", json=AUTH).json()
    _, public = teekey.generate()
    keep = SimulatedKeep("snp")
    runtime = json.dumps({"nonce": challenge["nonce"], "tee-pubkey": public})[:-1] + ', "x": "\\ud800"}'
    body = f'{{"runtime-data": {runtime}, "tee-evidence": {json.dumps(keep.evidence_for(bytes(64)))}}}'
    r = http.post("/kbs/v0/attest", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "Unicode" in r.json()["detail"]


def test_the_client_follows_no_redirect(tmp_path):
    """A broker URL that redirects (to http, or elsewhere) must not receive the cookie or token there."""
    seen: list[dict] = []

    async def capture(request: Request):
        seen.append(dict(request.headers))
        return JSONResponse({"nonce": "n"})

    sink = BackgroundServer(Starlette(routes=[Route("/{p:path}", capture, methods=["GET", "POST"])])).start()

    async def redirect(request: Request):
        return RedirectResponse(f"http://127.0.0.1:{sink.port}{request.url.path}", status_code=307)

    source = BackgroundServer(Starlette(routes=[Route("/{p:path}", redirect, methods=["GET", "POST"])])).start()
    try:
        client = KbsClient(f"http://127.0.0.1:{source.port}")
        with pytest.raises(KbsError) as exc:
            client.attest("snp", SimulatedKeep("snp").evidence_for)
        assert exc.value.status == 307
        assert seen == []
    finally:
        sink.stop()
        source.stop()


def test_the_nonce_is_the_stewards_design(broker):
    """One nonce design: the broker's challenge is a Steward challenge nonce (version, expiry, random, MAC)."""
    from enarx.attestation import freshness

    nonce = httpx.post(f"{broker.url}/kbs/v0/auth", json=AUTH).json()["nonce"]
    raw = freshness.decode(nonce)
    assert len(raw) == freshness.NONCE_SIZE and raw[0] == freshness.VERSION
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == nonce


def test_a_keep_cannot_roll_the_brokers_collateral_back(tmp_path):
    """The broker's --collateral is its store, the reference for freshness: a keep that sends TCB info and
    CRLs older than those the broker holds is refused, not verified against its own older copies."""
    from datetime import UTC, datetime, timedelta

    from _kbs import INTEL_PKI, simulator_anchors, simulator_pool

    from enarx.attestation.collateral import add_bytes
    from enarx.attestation.model import CollateralSet, Tee
    from enarx.attestation.simulate.intel import platform_collateral
    from enarx.kbs.app import create_app
    from enarx.kbs.service import Broker, BrokerConfig
    from enarx.kbs.store import ResourceStore

    def broker_holding(issued: datetime) -> BackgroundServer:
        held = CollateralSet()
        for name, data in platform_collateral(Tee.TDX, INTEL_PKI, issued).items():
            add_bytes(held, data, name)
        config = BrokerConfig(anchors=simulator_anchors(), collateral=simulator_pool().merge(held),
                              store=ResourceStore(tmp_path / issued.isoformat()))
        return BackgroundServer(create_app(Broker(config))).start()

    now = datetime.now(UTC).replace(microsecond=0)
    for issued, status in ((now, 200), (now + timedelta(hours=2), 403)):  # the keep's: issued an hour before now
        server = broker_holding(issued)
        try:
            r = attest_raw(httpx.Client(base_url=f"http://127.0.0.1:{server.port}"), SimulatedKeep("tdx"), tee="tdx")
        finally:
            server.stop()
        assert r.status_code == status, r.text
        if status == 403:
            assert r.json()["reason"] == "stale-collateral", r.text
