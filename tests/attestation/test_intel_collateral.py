"""Intel JSON collateral: exact signed bytes, layouts, TCB info v2/v3 and QE identity parsing."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from enarx.attestation.intel.collateral import (
    is_intel_document,
    json_members,
    parse_crl,
    parse_document,
    parse_tcb_info_body,
)
from enarx.attestation.model import CollateralSet, MalformedEvidence, TcbStatus
from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx


def test_members_keep_exact_text():
    text = '{ "tcbInfo" : {"b": 1,  "a" :[1, 2]} ,"signature":"ab"}'
    members = json_members(text, "t")
    value, start, end = members["tcbInfo"]
    assert text[start:end] == '{"b": 1,  "a" :[1, 2]}'
    assert value == {"b": 1, "a": [1, 2]}


@pytest.mark.parametrize("text", ['{"a":1,"a":2}', '{"a":1', "[1]", '{"a":1} x', "", '{"a" 1}', '{"a":1,}'])
def test_members_reject_malformed(text):
    with pytest.raises(MalformedEvidence):
        json_members(text, "t")


def test_trailing_nul_and_whitespace_tolerated():
    assert "a" in json_members('{"a":1}\n\x00\x00', "t")


def test_tcb_info_v2_format():
    level = {f"sgxtcbcomp{n:02d}svn": n for n in range(1, 17)}
    level["pcesvn"] = 7
    body = {"version": 2, "issueDate": "2019-09-05T07:47:07Z", "nextUpdate": "2029-09-05T07:47:07Z",
            "fmspc": "00707F000000", "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 3,
            "tcbLevels": [{"tcb": level, "tcbDate": "2019-09-01T00:00:00Z", "tcbStatus": "OutOfDate"}]}
    info = parse_tcb_info_body(json.dumps(body).encode())
    assert info.id == "SGX" and info.version == 2
    assert info.levels[0].sgx_components == tuple(range(1, 17)) and info.levels[0].pcesvn == 7
    assert info.levels[0].status == TcbStatus.OUT_OF_DATE


def test_tdx_tcb_info_v3_with_module_identities():
    sim = simulate_tdx()
    doc = parse_document(sim.files["tcbinfo.json"], "tcbinfo.json")
    info = doc.tcb_infos[0]
    assert info.id == "TDX" and info.tdx_module is not None
    assert info.tdx_module_identities[0].id == "TDX_01"
    assert info.levels[0].tdx_components is not None


def test_unknown_status_and_bad_hex_are_malformed():
    sim = simulate_sgx()
    raw = sim.files["tcbinfo.json"]
    for old, new in ((b'"UpToDate"', b'"Fine"'), (b'"fmspc":"', b'"fmspc":"zz')):
        with pytest.raises(MalformedEvidence):
            parse_document(raw.replace(old, new, 1), "tcbinfo.json")


def test_combined_layout_yields_everything():
    sim = simulate_sgx(combined=True)
    doc = parse_document(sim.files["collateral.json"], "collateral.json")
    assert len(doc.tcb_infos) == 1 and len(doc.qe_identities) == 1
    assert len(doc.crls) == 2 and len(doc.certificates) >= 3
    assert doc.tcb_infos[0].signed.raw == json.loads(sim.files["collateral.json"])["tcb_info"].encode()


def test_crl_encodings():
    sim = simulate_sgx()
    crl = sim.collateral.crls[0]
    der = crl.public_bytes(Encoding.DER)
    for value in (der.hex(), der, crl.public_bytes(Encoding.PEM).decode(), base64.b64encode(der).decode(), list(der)):
        assert parse_crl(value, "x") == der
    with pytest.raises(MalformedEvidence):
        parse_crl("00ff", "x")


def test_non_intel_json_is_ignored():
    from enarx.attestation.verifier import Verifier

    others = [("wasi.json", b'{"args": [], "env": {}}'), ("list.json", b"[1,2]")]
    assert not any(is_intel_document(raw) for _, raw in others)
    sim = simulate_sgx()
    cs = CollateralSet(json_documents=[*others, *sim.collateral.json_documents], certificates=sim.collateral.certificates,
                       crls=sim.collateral.crls)
    assert Verifier(anchors=sim.anchors).verify(sim.quote, cs, at=sim.at).status == "trusted"
