"""Count the signature operations code actually performs, by algorithm, and time exactly that work alone.

A crypto floor is honest only when it counts what the measured code does: a memo that skips checks lowers
the work, a retry against the wrong root adds to it. So the floor is not a constant: run the code once
under :func:`counting`, then :func:`floor_rate` times the counted operations alone with ``cryptography``,
in as many processes as the server being compared uses::

    import cryptocount
    with cryptocount.counting() as ops:
        verifier.verify(evidence, collateral, at=when)
    floor = cryptocount.floor_rate(ops, processes=1)      # verifications/s if only the crypto cost
    note = cryptocount.describe(ops)                      # "3 ECDSA P-256 verify + 1 ECDSA P-256 sign"

How: a profile hook (``sys.setprofile``, and ``threading.setprofile`` for threads started meanwhile) sees
every call into ``cryptography``'s native key, certificate and CRL methods. Counted: ``verify`` and ``sign``
on public/private keys, ``Certificate.verify_directly_issued_by`` and ``CertificateRevocationList.
is_signature_valid`` (their algorithm is read from the signature: RSA by its length, ECDSA curve by its
DER length), and the builders' ``sign`` (certificates, CSRs, CRLs). A failed verification counts: it was
done. Not seen: property getters (e.g. ``CertificateSigningRequest.is_signature_valid``) and threads that
already existed. ``python -m enarx ...`` servers are counted from outside with ``bench/instrumented.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

#: (kind, algorithm), e.g. ("verify", "ECDSA P-256"); a Counter of them is the work of one operation.
Op = tuple[str, str]
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_BUILDERS = {"cryptography.x509.base"}


def key_algorithm(key: Any) -> str:
    """``ECDSA P-256``, ``RSA-4096``, ``Ed25519``… for a public or private key."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "Ed448"
    return type(key).__name__


def signature_algorithm(signed: Any) -> str:
    """The signer's algorithm of a certificate or CRL, from its signature (the issuer key is not at hand)."""
    name = signed.signature_algorithm_oid._name.lower()
    size = len(signed.signature)
    if "ecdsa" in name:
        return "ECDSA " + ("P-256" if size <= 73 else "P-384" if size <= 105 else "P-521")
    if "ed25519" in name:
        return "Ed25519"
    if "ed448" in name:
        return "Ed448"
    return f"RSA-{size * 8}"


def _classify(receiver: Any, method: str) -> Op | None:
    kind = type(receiver).__name__
    if method in ("verify", "sign") and kind.endswith(("PublicKey", "PrivateKey")):
        return method, key_algorithm(receiver)
    if method == "verify_directly_issued_by" and kind == "Certificate":
        return "verify", signature_algorithm(receiver)
    if method == "is_signature_valid" and kind == "CertificateRevocationList":
        return "verify", signature_algorithm(receiver)
    return None


@contextmanager
def counting() -> Iterator[Counter[Op]]:
    """Count signature operations in this thread (and threads it starts) while the block runs."""
    ops: Counter[Op] = Counter()
    lock = threading.Lock()

    def hook(frame: Any, event: str, arg: Any) -> None:
        op = None
        if event == "c_call":
            receiver = getattr(arg, "__self__", None)
            if receiver is not None and type(receiver).__module__.startswith("cryptography"):
                op = _classify(receiver, arg.__name__)
        elif event == "call" and frame.f_code.co_name == "sign" and frame.f_globals.get("__name__") in _BUILDERS:
            key = frame.f_locals.get("private_key")
            op = ("sign", key_algorithm(key)) if key is not None else None
        if op is not None:
            with lock:
                ops[op] += 1

    previous = sys.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield ops
    finally:
        sys.setprofile(previous)
        threading.setprofile(None)  # type: ignore[arg-type]


def describe(ops: Counter[Op], per: int = 1) -> str:
    """``3 ECDSA P-256 verify + 1 ECDSA P-256 sign`` (counts divided by ``per``)."""
    parts = [f"{n / per:g} {algorithm} {kind}" for (kind, algorithm), n in sorted(ops.items()) if n]
    return " + ".join(parts) or "no signature operations"


def per_operation(ops: Counter[Op], per: int) -> Counter[Op]:
    """``ops`` counted over ``per`` operations, as the work of one (rounded to whole operations)."""
    return Counter({op: round(n / per) for op, n in ops.items() if round(n / per)})


@cache
def _key(algorithm: str) -> Any:
    if algorithm.startswith("ECDSA "):
        curve = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}[algorithm[6:]]
        return ec.generate_private_key(curve())
    if algorithm.startswith("RSA-"):
        return rsa.generate_private_key(65537, int(algorithm[4:]))
    return {"Ed25519": ed25519.Ed25519PrivateKey, "Ed448": ed448.Ed448PrivateKey}[algorithm].generate()


def _sign_args(algorithm: str) -> tuple[Any, ...]:
    if algorithm.startswith("ECDSA "):
        digest = {"P-256": hashes.SHA256, "P-384": hashes.SHA384, "P-521": hashes.SHA512}[algorithm[6:]]
        return (ec.ECDSA(digest()),)
    if algorithm.startswith("RSA-"):
        return padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48), hashes.SHA384()
    return ()


def _work(ops: Counter[Op]) -> list[Any]:
    """One callable per counted operation, on keys and data of the counted algorithms."""
    data = os.urandom(1024)
    calls = []
    for (kind, algorithm), n in ops.items():
        key, args = _key(algorithm), _sign_args(algorithm)
        if kind == "sign":
            calls += [lambda key=key, args=args: key.sign(data, *args)] * n
        else:
            public, signature = key.public_key(), key.sign(data, *args)
            calls += [lambda p=public, s=signature, args=args: p.verify(s, data, *args)] * n
    return calls


def _loop(calls: list[Any], seconds: float) -> tuple[int, float]:
    """(operations done, elapsed) doing ``calls`` over and over for about ``seconds``."""
    done, start = 0, time.perf_counter()
    while True:
        for call in calls:
            call()
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done, elapsed


def _child(calls: list[Any], seconds: float, start: Any, out: Any) -> None:
    start.wait()
    out.send(_loop(calls, seconds))


def floor_rate(ops: Counter[Op], *, seconds: float = 1.0, processes: int = 1) -> float:
    """Operations per second if one cost only the signature work ``ops`` (counted for one operation), done
    by ``processes`` processes at once, as a server with that many workers would."""
    calls = _work(ops)
    if not calls:
        raise ValueError("no signature operations counted: nothing to build a floor from")
    if processes <= 1:
        done, elapsed = _loop(calls, seconds)
        return done / elapsed
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    pipes, children = [], []
    for _ in range(processes):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(calls, seconds, start, send), daemon=True)
        child.start()
        pipes.append(receive)
        children.append(child)
    start.set()
    results = [pipe.recv() for pipe in pipes]
    for child in children:
        child.join()
    return sum(done / elapsed for done, elapsed in results)
