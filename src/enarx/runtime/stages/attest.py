"""Stage: get the keep certified by its Steward before the workload runs (Enarx §6).

The keep makes a key, asks its platform (or the simulator) for evidence binding that key, sends a CSR
carrying the evidence to the Steward named in the Enarx.toml (or, for ``enarx deploy``, in the launch) and
keeps the certificate chain it is issued.
Without a ``steward`` the stage does nothing (TLS then uses a self-signed identity).
"""

from __future__ import annotations

import os

from enarx.errors import KeepError
from enarx.runtime.launch import Launch, StageFailure


def attest(launch: Launch) -> None:
    plan = launch.need_plan()
    steward = launch.request.steward_url or (plan.config.steward if plan.config is not None else None)
    if not steward:
        return
    try:
        launch.identity = certify(launch, steward)
    except KeepError as exc:
        raise StageFailure(str(exc)) from None


def certify(launch: Launch, steward_url: str):
    """A :class:`~enarx.runtime.identity.KeepIdentity` whose chain the Steward issued."""
    from enarx.runtime.attest.steward import certify as request_certified_key
    from enarx.runtime.attest.steward import tls_context
    from enarx.runtime.identity import KeepIdentity

    ca_pem = launch.request.ca_bundle_pem
    tls_context(steward_url, ca_pem)  # the URL rule and the bundle, before any evidence is made
    source = evidence_source(launch)
    key, chain = request_certified_key(steward_url, source, ca_pem=ca_pem, isolation=launch.request.isolation)
    _log_info("certified by %s as %s", steward_url, chain[0].subject.rfc4514_string() or "(empty subject)")
    return KeepIdentity(key, chain)


def evidence_source(launch: Launch):
    """Simulated evidence when the user asked for it, else what this machine can give."""
    req = launch.request
    if not req.simulate_tee:
        return platform_evidence()
    from pathlib import Path

    from enarx.runtime.attest.simulated import simulated_source

    if req.simulator_dir:
        directory = Path(req.simulator_dir)
    else:
        from enarx.runtime.cachedir import default_cache_dir

        directory = default_cache_dir() / "simulator"
    from enarx.runtime.hostdata import host_data

    # a keep that fetches (deploy) or is pushed its package is measured before the package exists (the launch
    # has no module): the package, or its publisher, is named by the host data bound at launch
    return simulated_source(req.simulate_tee, directory, launch.wasm,  # refused in a guest
                            host_data=host_data(req, "tdx" if req.simulate_tee == "tdx" else "sev-snp"))


def platform_evidence():
    """The evidence this machine can give: a confidential guest's own (SEV-SNP, TDX), else none (nil/kvm)."""
    from enarx.runtime.attest.evidence import NilEvidence, SnpGuestEvidence, TdxGuestEvidence

    if os.path.exists("/dev/sev-guest"):
        return SnpGuestEvidence()
    if os.path.exists("/dev/tdx_guest"):
        return TdxGuestEvidence()
    return NilEvidence()


def _log_info(message: str, *args: object) -> None:
    import logging

    logging.getLogger("enarx.keep").info(message, *args)
