"""NVIDIA Hopper GPU attestation: an SPDM 1.1 GET_MEASUREMENTS transcript signed by the device key.

Evidence = request ‖ response, as the GPU driver exports it (usually hex text)::

    request   version(0x11) code(0xE0) param1 param2 | nonce[32] | slot_id        (37 bytes)
    response  version code(0x60) param1 param2 | block_count u8 | record_len u24 | record
              | nonce[32] | opaque_len u16 | opaque | signature[96] (P-384 r‖s)

The signature covers every preceding byte (request and response) with ECDSA P-384/SHA-384 by the first
certificate of the device chain (GH100 FMC leaf → BROM → provisioner ICA → GH100 Identity → NVIDIA
Device Identity CA, the built-in anchor). The chain comes from the collateral. NVIDIA revokes by OCSP
only (no offline source): revocation is ``not-available``. RIMs are not evaluated, so the TCB status is
``NotEvaluated``; measurements are reported per block index (policy can pin them).
"""

from __future__ import annotations

from dataclasses import dataclass

from enarx.attestation import crypto
from enarx.attestation.chain import CrlScope
from enarx.attestation.claims import NvidiaClaims, Provenance
from enarx.attestation.context import Context
from enarx.attestation.model import MalformedEvidence, TcbStatus
from enarx.attestation.pki import Cert

REQUEST_LEN = 37
SIGNATURE_LEN = 96


@dataclass(frozen=True)
class MeasurementBlock:
    index: int
    spec: int
    value_type: int
    value: bytes


@dataclass(frozen=True)
class SpdmMeasurements:
    version: int
    request_nonce: bytes
    slot_id: int
    blocks: tuple[MeasurementBlock, ...]
    response_nonce: bytes
    opaque: bytes
    signature: bytes
    signed: bytes


def parse(data: bytes) -> SpdmMeasurements:
    data = bytes(data)
    if len(data) < REQUEST_LEN + 8 + 32 + 2 + SIGNATURE_LEN:
        raise MalformedEvidence(f"SPDM transcript too short ({len(data)} bytes)")
    if data[1] != 0xE0:
        raise MalformedEvidence("SPDM transcript does not start with a GET_MEASUREMENTS request")
    request_nonce, slot = data[4:36], data[36]
    resp = data[REQUEST_LEN:]
    if resp[1] != 0x60 or resp[0] != data[0]:
        raise MalformedEvidence("SPDM response is not a MEASUREMENTS response of the request's version")
    count = resp[4]
    record_len = int.from_bytes(resp[5:8], "little")
    off = 8 + record_len
    if off + 32 + 2 > len(resp):
        raise MalformedEvidence("SPDM measurement record runs past the end of the transcript")
    record = resp[8:off]
    blocks = []
    i = 0
    while i < len(record):
        if i + 7 > len(record):
            raise MalformedEvidence("SPDM measurement block header truncated")
        index, spec, size = record[i], record[i + 1], int.from_bytes(record[i + 2 : i + 4], "little")
        if i + 4 + size > len(record) or size < 3:
            raise MalformedEvidence(f"SPDM measurement block {index} has a bad size")
        value_type, value_size = record[i + 4], int.from_bytes(record[i + 5 : i + 7], "little")
        if value_size != size - 3:
            raise MalformedEvidence(f"SPDM measurement block {index}: value size disagrees with block size")
        blocks.append(MeasurementBlock(index, spec, value_type, record[i + 7 : i + 4 + size]))
        i += 4 + size
    if len(blocks) != count:
        raise MalformedEvidence(f"SPDM response announces {count} blocks but holds {len(blocks)}")
    response_nonce = resp[off : off + 32]
    off += 32
    opaque_len = int.from_bytes(resp[off : off + 2], "little")
    off += 2
    if off + opaque_len + SIGNATURE_LEN != len(resp):
        raise MalformedEvidence("SPDM response length does not match opaque data plus a 96-byte signature")
    opaque = resp[off : off + opaque_len]
    signature = resp[off + opaque_len :]
    return SpdmMeasurements(data[0], request_nonce, slot, tuple(blocks), response_nonce, opaque, signature,
                            data[: len(data) - SIGNATURE_LEN])


def _device_leaf(certs: list[Cert], ctx: Context) -> Cert:
    issuers = {c.issuer_der for c in certs if not c.self_issued}
    leaves = [c for c in certs if not c.self_issued and c.subject_der not in issuers]
    if not leaves:
        raise ctx.trail.fail("nvidia.device-certificate", "no NVIDIA device certificate among the collateral "
                             "(only CA certificates)", "chain")
    return leaves[0]


def verify(data: bytes, ctx: Context) -> NvidiaClaims:
    transcript = parse(data)
    trail = ctx.trail
    trail.ok("nvidia.format", f"SPDM 1.{transcript.version & 0xF} MEASUREMENTS, {len(transcript.blocks)} blocks")
    leaf = _device_leaf(ctx.supplied_certs(), ctx)
    result = ctx.chain(leaf, CrlScope.NONE, name="nvidia.chain", max_depth=8)
    key = leaf.public_key
    if getattr(getattr(key, "curve", None), "name", None) != "secp384r1" or not crypto.verify_raw_ecdsa(
            key, crypto.ECDSA_SHA384, transcript.signed, transcript.signature):
        raise trail.fail("nvidia.signature", "SPDM MEASUREMENTS signature does not verify with the device key",
                         "signature")
    trail.ok("nvidia.signature", f"ECDSA P-384/SHA-384 by {leaf.name}")
    trail.warn("revocation not available: NVIDIA revokes device certificates by OCSP only")
    trail.warn("NVIDIA RIMs were not evaluated: measurements are reported, not appraised against RIMs")
    return NvidiaClaims(
        report_data=transcript.request_nonce, debug=False, tcb_status=TcbStatus.NOT_EVALUATED,
        provenance=Provenance(result.anchor.cert.subject, result.anchor.cert.sha256, result.anchor.test,
                              result.revocation, collateral_expiry=result.expiry),
        blocks={b.index: b.value for b in transcript.blocks}, device=leaf.name, slot_id=transcript.slot_id,
        response_nonce=transcript.response_nonce, opaque=transcript.opaque,
    )
