"""The one registry of evidence formats, used by verify, show and the collateral cache.

Each :class:`Format` says how to recognise its bytes, parse them for display, verify them (given a
:class:`~enarx.attestation.context.Context`), which TEE its claims describe, and how to fetch the
collateral it needs ahead of time. Which anchors may end its chains is the anchors' binding
(:mod:`.anchors`); which links the vendor revokes by CRL is the verifier's ``CrlScope``.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enarx.attestation.model import MalformedEvidence, Tee


@dataclass(frozen=True)
class Format:
    name: str
    tee: Tee
    vendor: str  # whose roots anchor it, for messages
    parser: str  # "module:function" parsing bytes into a structure (for `attest show`)
    verifier: str  # "module:function" verifying bytes in a Context into claims
    detect: Callable[[bytes], bool]
    fetchable: bool = False  # `enarx attest cache fetch` knows where its collateral lives

    def parse(self, data: bytes) -> Any:
        """The parsed structure, for ``enarx attest show`` (no verification)."""
        return _resolve(self.parser)(data)

    def verify(self, data: bytes, ctx: Any) -> Any:
        return _resolve(self.verifier)(data, ctx)


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _is_snp(data: bytes) -> bool:
    from enarx.attestation.snp.abi import looks_like_report

    return looks_like_report(data)


def _intel(tee_type: int) -> Callable[[bytes], bool]:
    def detect(data: bytes) -> bool:
        if len(data) < 8:
            return False
        version, key_type, tee = struct.unpack_from("<HHI", data, 0)
        return version in (3, 4, 5) and key_type in (2, 3) and tee == tee_type

    return detect


def _is_nitro(data: bytes) -> bool:
    return data[:1] == b"\x84" or data[:2] == b"\xd2\x84"  # CBOR COSE_Sign1 (array of 4, or tag 18)


def _is_nvidia(data: bytes) -> bool:
    return len(data) >= 4 and data[0] in (0x10, 0x11, 0x12, 0x13) and data[1] == 0xE0  # SPDM GET_MEASUREMENTS


_A = "enarx.attestation"
FORMATS: dict[str, Format] = {
    f.name: f for f in (
        Format("snp", Tee.SNP, "AMD", f"{_A}.snp.abi:parse_report", f"{_A}.snp.verify:verify", _is_snp, True),
        Format("sgx", Tee.SGX, "Intel", f"{_A}.intel.abi:parse_quote", f"{_A}.intel.verify:verify", _intel(0x00),
               True),
        Format("tdx", Tee.TDX, "Intel", f"{_A}.intel.abi:parse_quote", f"{_A}.intel.verify:verify", _intel(0x81),
               True),
        Format("nitro", Tee.NITRO, "AWS", f"{_A}.nitro:parse", f"{_A}.nitro:verify", _is_nitro),
        Format("nvidia", Tee.NVIDIA, "NVIDIA", f"{_A}.nvidia:parse", f"{_A}.nvidia:verify", _is_nvidia),
    )
}
FORMAT_FOR_TEE: dict[Tee, str] = {f.tee: f.name for f in FORMATS.values()}


def detect(data: bytes) -> Format:
    """The format of ``data`` by content; :class:`MalformedEvidence` when none matches."""
    for fmt in FORMATS.values():
        if fmt.detect(data):
            return fmt
    raise MalformedEvidence("unrecognised evidence: not an SEV-SNP report, Intel quote, Nitro document or SPDM "
                            "report")


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise MalformedEvidence(f"unknown evidence format {name!r} (known: {', '.join(FORMATS)})") from None
