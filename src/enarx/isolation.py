"""A keep's own statement that it is *not* isolated, carried in its CSR beside the evidence (ours, not Enarx's)::

    1.3.6.1.4.1.58270.3.2  isolation  UTF8String, one of ISOLATION_LABELS

A nil keep is a process of its host; a kvm keep under QEMU's TCG emulator is emulated. Nothing can verify
such a statement, so it is only ever a downgrade: the Steward copies it into the certificate's claims
(``"isolation"``) and marks the certificate insecure, so that nobody mistakes such a keep's certificate —
even one issued on simulated evidence — for a hardware keep's. A host that leaves it out gains nothing: the
evidence of a keep without hardware is empty (kvm) or chains to a test anchor (simulated), and is insecure
anyway. Kept free of heavy imports (and outside ``enarx.attestation``): the nil backend reads the labels on
every ``enarx run``, and the protocol decoder in every guest image, the smallest one included.
"""

from __future__ import annotations

OID_ISOLATION = "1.3.6.1.4.1.58270.3.2"
PROCESS = "process, no isolation"  # the nil keep
EMULATED = "emulated, no isolation"  # a kvm keep under QEMU's TCG emulator
ISOLATION_LABELS = (PROCESS, EMULATED)


def encode(label: str) -> bytes:
    """The extension value: a DER UTF8String."""
    from enarx.attestation.der import utf8

    if label not in ISOLATION_LABELS:
        raise ValueError(f"{label!r} is not an isolation label ({', '.join(ISOLATION_LABELS)})")
    return utf8(label)
