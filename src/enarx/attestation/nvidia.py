"""NVIDIA Hopper GPU attestation: an SPDM 1.1 GET_MEASUREMENTS transcript signed by the device key.

Evidence = request ‖ response, as the GPU driver exports it (usually hex text)::

    request   version(0x11) code(0xE0) param1 param2 | nonce[32] | slot_id        (37 bytes)
    response  version code(0x60) param1 param2 | block_count u8 | record_len u24 | record
              | nonce[32] | opaque_len u16 | opaque | signature[96] (P-384 r‖s)

The signature covers every preceding byte (request and response) with ECDSA P-384/SHA-384 by the first
certificate of the device chain (GH100 FMC leaf → BROM → provisioner ICA → GH100 Identity → NVIDIA
Device Identity CA, the built-in anchor). The chain comes from the collateral. RIMs and OCSP are not
evaluated, so claims carry ``TcbStatus.UNKNOWN``; measurements are reported per block index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enarx.attestation import roots
from enarx.attestation.collateral import certificates_of
from enarx.attestation.model import (
    Check,
    Claims,
    CollateralSet,
    MalformedEvidence,
    TcbStatus,
    Tee,
    TrustAnchors,
    VerificationError,
)
from enarx.attestation.pki import Cert, build_path, check_validity

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


def _device_leaf(certs: list[Cert]) -> Cert:
    issuers = {c.issuer_der for c in certs if not c.self_issued}
    leaves = [c for c in certs if not c.self_issued and c.subject_der not in issuers]
    if not leaves:
        raise VerificationError("no NVIDIA device certificate among the collateral (only CA certificates)",
                                reason="chain", checks=[Check("nvidia.device-certificate", False, "missing")])
    return leaves[0]


def verify(data: bytes, collateral: CollateralSet | None, at: datetime,
           anchors: TrustAnchors) -> tuple[Claims, list[Check], list[str]]:
    transcript = parse(data)
    checks = [Check("nvidia.format", True, f"SPDM 1.{transcript.version & 0xF} MEASUREMENTS, "
                                           f"{len(transcript.blocks)} blocks")]
    certs = certificates_of(collateral)
    leaf = _device_leaf(certs)
    builtin, extra = roots.anchor_certs(anchors)
    try:
        path, anchor, chain_checks = build_path(leaf, certs, builtin + extra, max_depth=8)
        checks += chain_checks
        checks += check_validity(path, at)
    except VerificationError as exc:
        exc.checks = checks + exc.checks
        raise
    key: Any = leaf.public_key
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise InvalidSignature
        r = int.from_bytes(transcript.signature[:48], "big")
        s = int.from_bytes(transcript.signature[48:], "big")
        key.verify(encode_dss_signature(r, s), transcript.signed, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        checks.append(Check("nvidia.signature", False, "SPDM signature does not verify with the device key"))
        raise VerificationError("SPDM MEASUREMENTS signature does not verify", reason="signature", checks=checks)
    checks.append(Check("nvidia.signature", True, f"ECDSA P-384/SHA-384 by {leaf.name}"))
    claims = Claims(
        tee=Tee.NVIDIA,
        measurements={f"measurement{b.index}": b.value.hex() for b in transcript.blocks},
        tcb_status=TcbStatus.UNKNOWN,
        report_data=transcript.request_nonce,
        platform={"device": leaf.name, "anchor": anchor.subject, "slot_id": transcript.slot_id,
                  "test_anchor": any(a.same_as(anchor) for a in extra) and not any(b.same_as(anchor) for b in builtin)},
        collateral_expiry=min(c.not_after for c in path),
        extra={"response_nonce": transcript.response_nonce, "opaque": transcript.opaque},
    )
    return claims, checks, ["NVIDIA RIMs and OCSP were not evaluated: measurements are reported, not appraised"]
