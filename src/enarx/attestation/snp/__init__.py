"""AMD SEV-SNP: ``abi`` (report byte layout) and ``verify`` (VCEK/VLEK chains, CRLs, report signature)."""
