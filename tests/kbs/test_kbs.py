"""The key broker over real HTTP on loopback: the RCAR flow with simulated SEV-SNP and TDX keeps,
every refusal with its reasons, replay and nonce reuse, publisher registration with a real OIDC issuer."""

from __future__ import annotations

import base64
import json
import logging
import urllib.request

import httpx
import pytest
from _kbs import (
    OTHER_MEASUREMENT,
    OidcIssuer,
    SimulatedKeep,
    make_broker,
    package_policy,
    sealed_package,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx.kbs import evidence, teekey
from enarx.kbs.client import KbsClient, KbsError
from enarx.packaging import keys, unseal

TEES = ["snp", "tdx"]


@pytest.fixture(scope="module")
def issuer():
    server = OidcIssuer()
    yield server
    server.stop()


@pytest.fixture
def broker(tmp_path, issuer):
    broker, server = make_broker(tmp_path, issuer)
    broker.url = f"http://127.0.0.1:{server.port}"
    yield broker
    server.stop()


def register(broker, issuer, pkg, sub="alice", token=None) -> httpx.Response:
    token = token or issuer.token(sub)
    body = {"manifest": pkg.token, "key": base64.urlsafe_b64encode(pkg.content_key).decode().rstrip("=")}
    return httpx.post(f"{broker.url}/kbs/v0/resource/{pkg.manifest.resource}", json=body,
                      headers={"Authorization": f"Bearer {token}"})


def refused(exc: pytest.ExceptionInfo, status: int, *fragments: str) -> str:
    err = exc.value
    assert err.status == status, str(err)
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))
    return str(err)


@pytest.mark.parametrize("tee", TEES)
def test_attested_keep_gets_the_key_and_opens_the_package(tmp_path, broker, issuer, tee):
    pkg, pub = sealed_package(tmp_path, tee, f"alice/{tee}/v1")
    assert register(broker, issuer, pkg).status_code == 201
    keep = SimulatedKeep(tee)
    client = KbsClient(broker.url)
    token = client.attest(tee, keep.evidence_for, package=pkg.manifest.digest)
    key = client.resource(pkg.manifest.resource)
    assert key == pkg.content_key
    source = unseal.DirectorySource(pkg.directory)
    files = unseal.open_package(source, unseal.read_manifest(source, keys.load_public_key(pub)), key)
    assert b"MARKER-secret-workload" in files["main.wasm"]
    # the token works as a bearer credential too, and its claims are an EAR
    assert client.resource(pkg.manifest.resource, use_token=True) == pkg.content_key
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["eat_profile"] == "tag:github.com,2023:veraison/ear"
    # simulated evidence chains to a test root: never "affirming", and the token says so
    assert claims["submods"][tee]["ear.status"] == "warning"
    assert claims["submods"][tee]["ear.trustworthiness-vector"]["hardware"] == 32
    assert claims["submods"][tee]["enarx.test-anchor"] is True
    assert claims["enarx-package"] == pkg.manifest.digest
    # the token verifies with the key published at the JWKS endpoint
    from joserfc import jwt
    from joserfc.jwk import KeySet

    jwks = KeySet.import_key_set(httpx.get(f"{broker.url}/.well-known/jwks.json").json())
    assert jwt.decode(token, jwks, algorithms=["ES256"]).claims["tee-pubkey"]["kty"] == "EC"


def test_a_keep_without_isolation_says_so_in_its_token(tmp_path, broker, issuer):
    """A nil (or emulated) keep's label is bound with its runtime-data; the token repeats it, and is never
    "affirming" for it. An unknown label is refused."""
    from enarx.isolation import PROCESS
    from enarx.kbs.client import KbsError

    pkg, _pub = sealed_package(tmp_path, "snp", "alice/snp/isolation")
    assert register(broker, issuer, pkg).status_code == 201
    keep = SimulatedKeep("snp")
    token = KbsClient(broker.url).attest("snp", keep.evidence_for, package=pkg.manifest.digest, isolation=PROCESS)
    submod = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["submods"]["snp"]
    assert submod["enarx.isolation"] == PROCESS and submod["ear.status"] == "warning"
    plain = KbsClient(broker.url).attest("snp", keep.evidence_for, package=pkg.manifest.digest)
    assert "enarx.isolation" not in json.loads(base64.urlsafe_b64decode(plain.split(".")[1] + "=="))["submods"]["snp"]
    with pytest.raises(KbsError) as exc:
        KbsClient(broker.url).attest("snp", keep.evidence_for, isolation="isolated, promise")
    refused(exc, 400, "enarx-isolation must be one of")


OLD_TCB = {"snp": ("[min_svn]\nsnp = 24\n", {"tcb": {"bootloader": 4, "tee": 0, "snp": 10, "microcode": 219}}),
           "tdx": ("[min_svn]\ntdx_module_svn = 3\n", {"tee_tcb_svn": bytes([1, 0, 0]) + bytes(13)})}


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize("case", ["measurement", "debug", "old-tcb"])
def test_a_keep_that_fails_the_package_policy_is_refused_with_the_rules(tmp_path, issuer, tee, case):
    from enarx.packaging import trust

    # a lenient broker (debug allowed), so that each refusal below comes from the package's own policy
    broker, server = make_broker(tmp_path, issuer, policy=trust.parse_policy("allow_debug = true\n"))
    broker.url = f"http://127.0.0.1:{server.port}"
    try:
        policy = package_policy(tee, extra=OLD_TCB[tee][0] if case == "old-tcb" else "")
        pkg, _ = sealed_package(tmp_path, tee, f"alice/{tee}-{case}/v1", policy=policy)
        assert register(broker, issuer, pkg).status_code == 201
        keep = {"measurement": SimulatedKeep(tee, OTHER_MEASUREMENT), "debug": SimulatedKeep(tee, debug=True),
                "old-tcb": SimulatedKeep(tee, **OLD_TCB[tee][1])}[case]
        client = KbsClient(broker.url)
        client.attest(tee, keep.evidence_for, package=pkg.manifest.digest)
        with pytest.raises(KbsError) as exc:
            client.resource(pkg.manifest.resource)
        rule = {"measurement": "policy.measurement.allow" if tee == "snp" else "policy.mrtd.allow",
                "debug": "policy.debug",
                "old-tcb": "policy.min_svn.snp" if tee == "snp" else "policy.min_svn.tdx_module_svn"}[case]
        refused(exc, 403, "package policy", rule, "expected")
        assert exc.value.reason == "package-policy"
    finally:
        server.stop()


def test_the_default_broker_policy_refuses_a_debug_keep_at_attestation(broker):
    with pytest.raises(KbsError) as exc:
        KbsClient(broker.url).attest("snp", SimulatedKeep("snp", debug=True).evidence_for)
    refused(exc, 403, "policy.debug")


def test_the_broker_policy_applies_at_attestation(tmp_path, issuer):
    from enarx.packaging import trust

    _broker, server = make_broker(tmp_path, issuer, policy=trust.parse_policy(
        package_policy("snp", OTHER_MEASUREMENT, test_anchors=False)))
    try:
        with pytest.raises(KbsError) as exc:
            KbsClient(f"http://127.0.0.1:{server.port}").attest("snp", SimulatedKeep("snp").evidence_for)
        refused(exc, 403, "refused by the broker's policy", "policy.measurement.allow")
    finally:
        server.stop()


@pytest.mark.parametrize("tee", TEES)
def test_a_release_replayed_to_another_keep_or_after_restart_is_useless(tmp_path, broker, issuer, tee):
    pkg, _ = sealed_package(tmp_path, tee, f"alice/{tee}-replay/v1")
    assert register(broker, issuer, pkg).status_code == 201
    victim = KbsClient(broker.url)
    victim.attest(tee, SimulatedKeep(tee).evidence_for, package=pkg.manifest.digest)
    # an attacker on the path records the response and the token …
    response = httpx.get(f"{broker.url}/kbs/v0/resource/{pkg.manifest.resource}",
                         headers={"Authorization": f"Bearer {victim.token}"}).json()
    assert pkg.content_key.hex() not in json.dumps(response)
    # … another keep (or the same keep restarted: a new ephemeral key) cannot open it
    other = KbsClient(broker.url)
    other.attest(tee, SimulatedKeep(tee).evidence_for)
    with pytest.raises(teekey.TeeKeyError):
        teekey.unwrap(response, other._private)
    restarted_key, _ = teekey.generate()
    with pytest.raises(teekey.TeeKeyError):
        teekey.unwrap(response, restarted_key)
    assert teekey.unwrap(response, victim._private) == pkg.content_key


def test_evidence_replayed_with_a_used_nonce_is_refused(tmp_path, broker):
    client = KbsClient(broker.url)
    keep = SimulatedKeep("snp")
    client.attest("snp", keep.evidence_for)
    # replay the same attestation body in the same session: the nonce is spent
    _private, public = teekey.generate()
    http = httpx.Client(base_url=broker.url)
    challenge = http.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "snp", "extra-params": ""}).json()
    runtime = {"nonce": challenge["nonce"], "tee-pubkey": public}
    body = {"runtime-data": runtime, "tee-evidence": keep.evidence_for(evidence.report_data_for(runtime))}
    assert http.post("/kbs/v0/attest", json=body).status_code == 200
    again = http.post("/kbs/v0/attest", json=body)
    assert again.status_code == 401 and again.json()["reason"] == "nonce-reused"
    # the same evidence in a fresh session: that session's nonce differs from the one the evidence binds
    fresh = httpx.Client(base_url=broker.url)
    fresh.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "snp", "extra-params": ""})
    replay = fresh.post("/kbs/v0/attest", json=body)
    assert replay.status_code == 401 and replay.json()["reason"] == "nonce-mismatch"
    # and with the fresh nonce written into runtime-data, report_data no longer binds it
    challenge = fresh.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "snp", "extra-params": ""}).json()
    forged = {**body, "runtime-data": {"nonce": challenge["nonce"], "tee-pubkey": public}}
    bound = fresh.post("/kbs/v0/attest", json=forged)
    assert bound.status_code == 403 and bound.json()["reason"] == "binding"
    assert "kbs.runtime-data-binding" in bound.text


def test_a_swapped_public_key_breaks_the_binding(tmp_path, broker):
    http = httpx.Client(base_url=broker.url)
    challenge = http.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "tdx", "extra-params": ""}).json()
    _, honest = teekey.generate()
    _, attacker = teekey.generate()
    report = SimulatedKeep("tdx").evidence_for(evidence.report_data_for({"nonce": challenge["nonce"],
                                                                         "tee-pubkey": honest}))
    r = http.post("/kbs/v0/attest", json={"runtime-data": {"nonce": challenge["nonce"], "tee-pubkey": attacker},
                                         "tee-evidence": report})
    assert r.status_code == 403 and r.json()["reason"] == "binding"


def test_resources_need_attestation_and_exist(tmp_path, broker, issuer):
    r = httpx.get(f"{broker.url}/kbs/v0/resource/a/b/c")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    client = KbsClient(broker.url)
    client.attest("snp", SimulatedKeep("snp").evidence_for)
    with pytest.raises(KbsError) as exc:
        client.resource("nobody/nothing/here")
    refused(exc, 404, "no resource")
    r = httpx.get(f"{broker.url}/kbs/v0/resource/a/b/c", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["reason"] == "bad-token"


def test_registration_is_authenticated_owned_and_write_once(tmp_path, broker, issuer):
    pkg, _ = sealed_package(tmp_path, "snp", "alice/app/v1")
    no_auth = httpx.post(f"{broker.url}/kbs/v0/resource/alice/app/v1", json={"manifest": pkg.token, "key": "x"})
    assert no_auth.status_code == 401
    assert register(broker, issuer, pkg, token=issuer.token("alice", expired=True)).status_code == 401
    assert register(broker, issuer, pkg, token=issuer.token("alice", audience="other")).status_code == 401
    assert register(broker, issuer, pkg, token=issuer.token("alice", issuer="http://127.0.0.1:1")).status_code == 401
    assert register(broker, issuer, pkg).status_code == 201
    again = register(broker, issuer, pkg)  # the very same registration: accepted (a publish run again)
    assert again.status_code == 200 and again.json()["manifest_sha256"] == pkg.manifest.digest
    (tmp_path / "another").mkdir()
    replacement, _ = sealed_package(tmp_path / "another", "snp", "alice/app/v1")
    taken = register(broker, issuer, replacement)
    assert taken.status_code == 409 and taken.json()["reason"] == "exists"
    other, _ = sealed_package(tmp_path, "snp", "alice/app/v2")
    assert register(broker, issuer, other, sub="mallory").status_code == 403
    # a key that is not the manifest's key, and a manifest for another path
    third, _ = sealed_package(tmp_path, "snp", "alice/app/v3")
    wrong = {"manifest": third.token, "key": base64.urlsafe_b64encode(pkg.content_key).decode()}
    r = httpx.post(f"{broker.url}/kbs/v0/resource/alice/app/v3", json=wrong,
                   headers={"Authorization": f"Bearer {issuer.token('alice')}"})
    assert r.status_code == 400 and r.json()["reason"] == "wrong-key"
    r = httpx.post(f"{broker.url}/kbs/v0/resource/alice/app/v9", json=wrong,
                   headers={"Authorization": f"Bearer {issuer.token('alice')}"})
    assert r.status_code == 400 and r.json()["reason"] == "resource-mismatch"


def test_keys_never_reach_the_logs_or_leave_the_store_in_the_clear(tmp_path, broker, issuer, caplog):
    caplog.set_level(logging.INFO, logger="enarx.kbs")
    pkg, _ = sealed_package(tmp_path, "snp", "alice/logs/v1")
    assert register(broker, issuer, pkg).status_code == 201
    client = KbsClient(broker.url)
    client.attest("snp", SimulatedKeep("snp").evidence_for, package=pkg.manifest.digest)
    client.resource(pkg.manifest.resource)
    text = caplog.text
    assert "kbs.resource" in text and "released" in text
    encodings = [pkg.content_key.hex(), base64.b64encode(pkg.content_key).decode(),
                 base64.urlsafe_b64encode(pkg.content_key).decode().rstrip("=")]
    assert not any(e in text for e in encodings)
    assert client.token not in text
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0
            assert b"MARKER-secret-workload" not in path.read_bytes()


@pytest.mark.parametrize("body,status", [
    (b"not json", 400), (b"[]", 400), (b'{"version": "9.0", "tee": "snp"}', 401),
    (b'{"version": "0.1.1", "tee": "quantum"}', 401),
])
def test_bad_auth_requests(broker, body, status):
    r = httpx.post(f"{broker.url}/kbs/v0/auth", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]


def test_oversized_and_mistyped_bodies(broker):
    r = httpx.post(f"{broker.url}/kbs/v0/auth", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(f"{broker.url}/kbs/v0/attest", content=b"x" * (5 << 20),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                        max_size=3), max_leaves=10)


@FUZZ
@given(tee=st.sampled_from(list(evidence.TEES.values())), doc=_json_values | st.fixed_dictionaries(
    {}, optional={"attestation_report": _json_values | st.text(max_size=20), "quote": st.text(max_size=40),
                  "cert_chain": _json_values, "enarx-collateral": _json_values}))
def test_fuzz_tee_evidence(tee, doc):
    try:
        evidence.parse_tee_evidence(tee, doc)
    except evidence.EvidenceError:
        pass


@FUZZ
@given(_json_values)
def test_fuzz_tee_pubkey(doc):
    try:
        teekey.parse_public(doc)
    except teekey.TeeKeyError:
        pass


@FUZZ
@given(body=_json_values)
def test_fuzz_attest_bodies_get_4xx(broker, body):
    http = httpx.Client(base_url=broker.url)
    http.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "snp", "extra-params": ""})
    r = http.post("/kbs/v0/attest", json=body)
    assert 400 <= r.status_code < 500, r.text


def test_kbs_serve_cli_announces_its_port_and_serves(tmp_path):
    import subprocess
    import sys

    from enarx.attestation.simulate.snp import default_pki

    (tmp_path / "ark.der").write_bytes(default_pki().ark)
    proc = subprocess.Popen([sys.executable, "-m", "enarx", "kbs", "serve", "--port", "0", "--insecure-trust-anchor",
                             str(tmp_path / "ark.der")], stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for _ in range(50):
            line = proc.stderr.readline()
            if "listening on" in line:
                url = line.split("listening on ")[1].strip().rstrip("/")
                break
        assert url, "no announcement"
        with urllib.request.urlopen(url + "/health", timeout=5) as r:
            assert r.status == 200
        from _kbs import simulator_pool  # noqa: F401 - the ASK is built in for real products only

        challenge = httpx.post(url + "/kbs/v0/auth", json={"version": "0.1.1", "tee": "snp", "extra-params": ""})
        assert challenge.status_code == 200 and "kbs-session-id" in challenge.headers["set-cookie"]
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run([sys.executable, "-m", "enarx", "kbs", "serve", "--addr", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "plain HTTP only on loopback" in bad.stderr
