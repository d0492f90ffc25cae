"""Fuzzing: the quote parser, the JSON collateral parser and verify_quote raise only typed errors."""

from __future__ import annotations

import json
from functools import cache

from _verify import verify_quote
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx.attestation.intel import abi
from enarx.attestation.intel.collateral import parse_document
from enarx.attestation.model import CollateralSet, MalformedEvidence, VerificationError
from enarx.attestation.simulate.intel import _raw_sign, simulate_sgx, simulate_tdx

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def sims():
    return (simulate_sgx(), simulate_tdx(), simulate_tdx(td15=True), simulate_sgx(cert_data_type=1, combined=True))


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


@FUZZ
@given(st.binary(max_size=3000))
def test_parse_random_bytes(data):
    try:
        abi.parse_quote(data)
    except MalformedEvidence:
        pass
    abi.looks_like_quote(data)


@FUZZ
@given(
    st.integers(0, 3),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    st.one_of(st.none(), st.integers(0, 6000)),
)
def test_parse_and_verify_mutated_quotes(which, edits, cut):
    sim = sims()[which]
    quote = _mutate(sim.quote, edits, cut)
    try:
        abi.parse_quote(quote)
    except MalformedEvidence:
        return
    try:
        verify_quote(quote, sim.collateral, sim.at, sim.anchors)
    except (MalformedEvidence, VerificationError):
        pass


@FUZZ
@given(st.integers(0, 1), st.integers(0, 8), st.sampled_from([0, 2, 0xFFFF, 0xFFFFFFFF, 6, 5, 1, 384]))
def test_length_fields(which, where, value):
    """Overwrite each length/type field with extreme values."""
    sim = sims()[which]
    q = abi.parse_quote(sim.quote)
    sig_len_at = len(q.signed_region)
    offsets = [sig_len_at, sig_len_at + 4 + 128, sig_len_at + 4 + 130, sig_len_at + 4 + 128 + 6 + 384 + 64,
               len(sim.quote) - len(q.certification_data.data) - 6, len(sim.quote) - len(q.certification_data.data) - 4,
               48, 50, 4]
    off = offsets[where]
    buf = bytearray(sim.quote)
    width = 4 if where in (0, 2, 5, 8) else 2
    buf[off : off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    try:
        verify_quote(bytes(buf), sim.collateral, sim.at, sim.anchors)
    except (MalformedEvidence, VerificationError):
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=2000))
def test_json_parser_random_bytes(data):
    try:
        parse_document(data, "fuzz")
    except MalformedEvidence:
        pass


@FUZZ
@given(st.sampled_from(["tcbInfo", "enclaveIdentity", "tcb_info", "qe_identity"]), json_values, json_values)
def test_json_parser_random_structures(key, body, signature):
    for doc in ({key: body, "signature": signature}, {key: body, "signature": "00" * 64},
                {key: json.dumps(body), f"{key}_signature": "11" * 64}):
        try:
            parse_document(json.dumps(doc).encode(), "fuzz")
        except MalformedEvidence:
            pass


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(st.integers(0, 3), st.integers(0, 10_000), json_values, st.booleans())
def test_mutated_collateral_documents(which, pick, replacement, delete):
    """Replace or delete one member anywhere in a valid document, then parse and verify with it."""
    sim = sims()[which]
    docs = sim.collateral.json_documents
    name, raw = docs[pick % len(docs)]
    doc = json.loads(raw)
    inner_key = next((k for k in ("tcbInfo", "enclaveIdentity") if k in doc), None)
    if inner_key is None:  # combined layout: mutate inside the embedded tcb_info string
        inner = json.loads(doc["tcb_info"])
    else:
        inner = doc[inner_key]
    paths = [p for p in _paths(inner) if p]
    path = paths[pick % len(paths)]
    target = inner
    for step in path[:-1]:
        target = target[step]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    # re-sign with the simulated TCB signing key so verification reaches TCB/QE identity evaluation
    body = json.dumps(inner, separators=(",", ":")).encode()
    sig = _raw_sign(sim.keys["tcb"], body).hex()
    if inner_key is None:
        doc["tcb_info"], doc["tcb_info_signature"] = body.decode(), sig
        new = json.dumps(doc).encode()
    else:
        new = b'{"' + inner_key.encode() + b'":' + body + b',"signature":"' + sig.encode() + b'"}'
    try:
        parse_document(new, name)
    except MalformedEvidence:
        pass
    cs = CollateralSet(certificates=sim.collateral.certificates, crls=sim.collateral.crls,
                       json_documents=[(n, new if n == name else r) for n, r in docs])
    try:
        verify_quote(sim.quote, cs, sim.at, sim.anchors)
    except (MalformedEvidence, VerificationError):
        pass
