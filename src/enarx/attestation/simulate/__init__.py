"""Simulators: structurally real evidence and collateral signed by *test* PKIs (see ``pki``).

``snp.simulate_snp`` (AMD SEV-SNP) and ``intel.simulate_sgx`` / ``intel.simulate_tdx`` (Intel DCAP).
Vendor roots never verify simulated evidence; trusting it takes an explicit extra trust anchor.
"""
