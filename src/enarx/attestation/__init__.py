"""Attestation evidence: parse → verify → appraise.

Stages, each its own module and testable alone (after google/go-sev-guest)::

    evidence bytes (binary / hex / base64)          collateral files & dirs (collateral.py)
          │ verifier.decode_evidence / detect_format         │  certs, CRLs, JSON, FILE#field
          ▼                                                  ▼
    snp/abi.py · intel/abi.py · nitro.py · nvidia.py   CollateralSet ◄── cache.py (KDS / PCS fetch,
          │ parse: bytes ↔ dataclasses                       │           bundles; never on this path)
          ▼                                                  │
    snp/verify.py · intel/verify.py  ◄───────────────────────┘  + TrustAnchors (roots/, --trust-anchor)
          │ verify: signatures, chains (pki.py), validity at `at`, CRLs, TCB matching
          ▼
    Claims (model.py) ── policy.py (TOML Policy.appraise) ──► Verdict: trusted | rejected | failed + reason

* ``snp/`` and ``intel/`` — byte layouts (``abi``) and genuineness checks (``verify``):
  signatures, certificate chains to built-in vendor roots, CRLs, collateral, TCB level matching.
* ``nitro`` (AWS Nitro COSE_Sign1) and ``nvidia`` (Hopper SPDM) — the same two stages, one module each.
* ``pki`` — certificates/CRLs parsed from exact DER (AMD's serial-0 VCEKs included), path building.
* ``roots/`` — built-in vendor roots shipped as package data and pinned by SHA-256.
* ``collateral`` — files and directories into a :class:`~enarx.attestation.model.CollateralSet`.
* ``policy`` — appraisal of already-verified :class:`~enarx.attestation.model.Claims`.
* ``verifier`` — the one entry point that detects the evidence type and runs the stages.
* ``binding`` — report_data ↔ public key (hash of the DER SubjectPublicKeyInfo).
* ``cache`` — offline-first collateral cache and air-gap bundles; ``bench`` — throughput vs crypto floor.
* ``simulate/`` — structurally real evidence signed by test PKIs (``pki``, ``snp``, ``intel``).

A verdict never mixes "is it genuine?" (``VerificationError``) with "do I accept it?"
(``PolicyRejection``).
"""
