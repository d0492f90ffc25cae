"""The key broker (``enarx kbs serve``): Trustee's KBS protocol, releasing package keys to attested keeps.

* :mod:`.nonce`     — stateless challenge nonces (HMAC + expiry) and the record of redeemed ones.
* :mod:`.evidence`  — Trustee's per-TEE ``tee-evidence`` JSON, ``runtime-data`` and its report_data binding.
* :mod:`.teekey`    — the keep's ephemeral ``tee-pubkey`` (JWK) and the JWE that wraps a resource to it.
* :mod:`.ear`       — attestation-result tokens (EAR JWTs) signed by the broker, and its JWKS.
* :mod:`.store`     — registered resources (content key + keep policy + owner), write-once.
* :mod:`.publisher` — authenticating publishers with OIDC bearer tokens.
* :mod:`.service`   — the decisions: auth, attest, release, register — each refusal typed, naming rules.
* :mod:`.app`, :mod:`.server` — Starlette routes and the uvicorn listeners (the Steward's options).
* :mod:`.client`    — the keep's side of the protocol.

The protocol is specified in ``docs/kbs.md``.
"""
