"""Attestation evidence: parse → verify → appraise.

Stages, each its own module and testable alone (after google/go-sev-guest):

* ``snp/`` and ``intel/`` — byte layouts (``abi``) and genuineness checks (``verify``):
  signatures, certificate chains to built-in vendor roots, CRLs, collateral, TCB level matching.
* ``policy`` — appraisal of already-verified :class:`~enarx.attestation.model.Claims`.
* ``verifier`` — the one entry point that detects the evidence type and runs the stages.

A verdict never mixes "is it genuine?" (``VerificationError``) with "do I accept it?"
(``PolicyRejection``).
"""
