"""Intel SGX and TDX (DCAP ECDSA quotes): ``abi`` (byte layouts), ``collateral`` (TCB info, QE identity,
CRLs and signing chains) and ``verify`` (signatures, chains, revocation and TCB level matching)."""
