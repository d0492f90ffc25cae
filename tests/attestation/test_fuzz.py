"""Hypothesis fuzzing of every parser on the SNP/shared path: only typed errors, never another exception."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx.attestation.collateral import add_bytes
from enarx.attestation.model import AttestationError, CollateralSet
from enarx.attestation.pki import Cert, Crl, split_pem
from enarx.attestation.policy import Policy
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.snp.abi import REPORT_SIZE, encode_report, parse_report
from enarx.attestation.verifier import Verifier, decode_evidence, detect_format

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIM = simulate_snp(crl=True)
VCEK = SIM.endorsement_cert
AT = datetime.now(UTC)


def typed_only(fn, data):
    try:
        fn(data)
    except AttestationError:
        pass


@FUZZ
@given(st.binary(max_size=1400))
def test_parse_report_random(data):
    typed_only(parse_report, data)


@FUZZ
@given(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255), st.integers(0, REPORT_SIZE + 16))
def test_parse_report_mutated(offset, xor, cut):
    data = bytearray(SIM.report)
    data[offset] ^= xor
    try:
        report = parse_report(bytes(data[:cut]))
    except AttestationError:
        return
    again = parse_report(encode_report(report))  # encode is the inverse of parse on every field
    assert dataclasses.replace(again, raw=b"") == dataclasses.replace(report, raw=b"")


@FUZZ
@given(st.integers(0, len(VCEK) - 1), st.integers(1, 255), st.integers(1, len(VCEK)))
def test_cert_parser_mutated(offset, xor, cut):
    data = bytearray(VCEK)
    data[offset] ^= xor
    typed_only(Cert.from_der, bytes(data[:cut]))


@FUZZ
@given(st.binary(max_size=600))
def test_cert_and_crl_parsers_random(data):
    typed_only(Cert.from_der, b"\x30" + data)
    typed_only(Crl.from_der, b"\x30" + data)


@FUZZ
@given(st.integers(0, len(SIM.crls[0]) - 1), st.integers(1, 255))
def test_crl_parser_mutated(offset, xor):
    data = bytearray(SIM.crls[0])
    data[offset] ^= xor
    typed_only(Crl.from_der, bytes(data))


@FUZZ
@given(st.one_of(st.binary(max_size=800), st.text(max_size=400).map(str.encode),
                 st.binary(max_size=300).map(lambda b: b"-----BEGIN CERTIFICATE-----\n" + b + b"\n-----END CERTIFICATE-----")))
def test_collateral_classifier(data):
    typed_only(lambda d: add_bytes(CollateralSet(), d, "fuzz"), data)
    typed_only(split_pem, data)


@FUZZ
@given(st.binary(max_size=1300))
def test_detection(data):
    decoded = decode_evidence(data)
    assert isinstance(decoded, bytes)
    typed_only(detect_format, decoded)


@FUZZ
@given(st.text(max_size=300))
def test_policy_loader(text):
    typed_only(Policy.from_toml, text)


@FUZZ
@given(st.dictionaries(st.sampled_from(["allow_debug", "tees", "tcb_statuses", "advisories", "measurements",
                                         "min_svn", "snp", "require_tcb_info"]),
                       st.recursive(st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=8)),
                                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                        st.text(max_size=6), inner, max_size=3), max_leaves=6), max_size=4))
def test_policy_structures(data):
    typed_only(lambda d: Policy.from_dict(d), data)


VERIFIER = Verifier(anchors=SIM.trust_anchors())


@FUZZ
@given(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255))
def test_verifier_never_trusts_a_modified_report(offset, xor):
    data = bytearray(SIM.report)
    data[offset] ^= xor
    verdict = VERIFIER.verify(bytes(data), SIM.collateral, at=AT)
    assert verdict.status == "failed"
    assert verdict.reason in ("signature", "parse", "collateral", "chain")


@FUZZ
@given(st.binary(max_size=2000))
def test_verifier_random_evidence(data):
    verdict = VERIFIER.verify(data, SIM.collateral, at=AT)
    assert verdict.status == "failed"


@FUZZ
@given(st.binary(max_size=600))
def test_nitro_and_nvidia_parsers_random(data):
    from enarx.attestation import nitro, nvidia

    typed_only(nitro.parse, b"\x84" + data)
    typed_only(nitro.parse, b"\xd2\x84" + data)
    typed_only(nvidia.parse, b"\x11\xe0" + data)


@FUZZ
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.binary(max_size=40), st.text(max_size=10)),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.one_of(st.integers(0, 5), st.sampled_from(["module_id", "digest", "timestamp", "pcrs",
                                                                      "certificate", "cabundle"])), inner,
                        max_size=6), max_leaves=12))
def test_nitro_structures(value):
    import cbor2

    from enarx.attestation import nitro

    typed_only(nitro.parse, cbor2.dumps([cbor2.dumps({1: -35}), {}, cbor2.dumps(value), b"\x00" * 96]))
    typed_only(nitro.parse, cbor2.dumps(value))
