"""The keep's ephemeral ``tee-pubkey`` (a public JWK) and the JWE that wraps a resource to it.

Keys: EC P-256 / P-384 with ``ECDH-ES+A256KW`` (the default; what the keep makes), RSA ≥ 2048 bits with
``RSA-OAEP-256`` or ``RSA-OAEP``; ``RSA1_5`` is refused (padding oracles). The response is the flattened
JSON serialization (``protected``, ``encrypted_key``, ``iv``, ``ciphertext``, ``tag``) with everything —
``epk`` included — in the protected header, as Trustee's clients read it; content encryption ``A256GCM``.
A response is useless to anyone but the holder of the private key, which never leaves the keep and does
not survive a restart.
"""

from __future__ import annotations

from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

EC_ALG = "ECDH-ES+A256KW"
RSA_ALGS = ("RSA-OAEP-256", "RSA-OAEP")
ENC = "A256GCM"
_PUBLIC_MEMBERS = {"EC": {"kty", "crv", "x", "y", "alg", "kid", "use"},
                   "RSA": {"kty", "n", "e", "alg", "kid", "use"}}


class TeeKeyError(Exception):
    """A malformed or unacceptable ``tee-pubkey``, or a response that does not decrypt."""


def parse_public(jwk: Any) -> tuple[ECKey | RSAKey, str]:
    """(key, key-wrapping algorithm) for a ``tee-pubkey``; :class:`TeeKeyError` if unacceptable."""
    if not isinstance(jwk, dict):
        raise TeeKeyError("tee-pubkey must be a JWK object")
    kty = jwk.get("kty")
    if kty not in _PUBLIC_MEMBERS:
        raise TeeKeyError(f"tee-pubkey kty {kty!r} is not EC or RSA")
    extra = set(jwk) - _PUBLIC_MEMBERS[kty]
    if extra:
        raise TeeKeyError(f"tee-pubkey has member {min(extra)!r} (a private key, or not a public JWK)")
    if not all(isinstance(v, str) for v in jwk.values()):
        raise TeeKeyError("tee-pubkey members must be strings")
    try:
        if kty == "EC":
            if jwk.get("crv") not in ("P-256", "P-384"):
                raise TeeKeyError(f"tee-pubkey curve {jwk.get('crv')!r} is not P-256 or P-384")
            alg = jwk.get("alg", EC_ALG)
            if alg != EC_ALG:
                raise TeeKeyError(f"EC tee-pubkey alg must be {EC_ALG}, not {alg!r}")
            return ECKey.import_key(dict(jwk)), alg
        alg = jwk.get("alg", RSA_ALGS[0])
        if alg not in RSA_ALGS:
            raise TeeKeyError(f"RSA tee-pubkey alg must be one of {', '.join(RSA_ALGS)}, not {alg!r}")
        key = RSAKey.import_key(dict(jwk))
        if key.raw_value.key_size < 2048:
            raise TeeKeyError("RSA tee-pubkey must be at least 2048 bits")
        return key, alg
    except TeeKeyError:
        raise
    except (JoseError, ValueError, TypeError) as exc:
        raise TeeKeyError(f"tee-pubkey is not a valid key: {exc}") from None


def generate() -> tuple[ECKey, dict[str, Any]]:
    """(private key, public JWK) — a fresh P-256 key for one attestation (the keep's side)."""
    key = ECKey.generate_key("P-256")
    public = key.as_dict(private=False)
    public = {"kty": "EC", "crv": public["crv"], "alg": EC_ALG, "x": public["x"], "y": public["y"]}
    return key, public


def wrap(plaintext: bytes, key: ECKey | RSAKey, alg: str) -> dict[str, str]:
    """A flattened JWE of ``plaintext`` to ``key``."""
    token = jwe.encrypt_compact({"alg": alg, "enc": ENC}, plaintext, key)
    protected, encrypted_key, iv, ciphertext, tag = token.split(".")
    return {"protected": protected, "encrypted_key": encrypted_key, "iv": iv, "ciphertext": ciphertext,
            "tag": tag}


def unwrap(response: Any, private: ECKey | RSAKey) -> bytes:
    """The plaintext of a flattened JWE response (the keep's side); :class:`TeeKeyError` if it does not open."""
    names = ("protected", "encrypted_key", "iv", "ciphertext", "tag")
    if not isinstance(response, dict) or not all(isinstance(response.get(n), str) for n in names):
        raise TeeKeyError("the broker's response is not a flattened JWE")
    if response.get("aad") not in (None, response["protected"]):
        raise TeeKeyError("the broker's response carries unexpected additional data")
    try:
        return jwe.decrypt_compact(".".join(response[n] for n in names), private,
                                   algorithms=[EC_ALG, *RSA_ALGS, ENC]).plaintext or b""
    except (JoseError, ValueError, TypeError) as exc:
        raise TeeKeyError(f"the broker's response does not decrypt with this keep's key: {exc}") from None
