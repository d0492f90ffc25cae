"""The Steward: a certificate authority that issues certificates only to attested keeps.

See :mod:`enarx.steward.csr` (wire formats and OIDs), :mod:`enarx.steward.issuer` (CA and the claims
extension), :mod:`enarx.steward.service` (the decision), :mod:`enarx.steward.app` (HTTP) and
:mod:`enarx.steward.server` (uvicorn).
"""

from enarx.steward.csr import OID_KVM, OID_SGX, OID_SNP, OID_TDX
from enarx.steward.issuer import OID_CLAIMS

__all__ = ["OID_CLAIMS", "OID_KVM", "OID_SGX", "OID_SNP", "OID_TDX"]
