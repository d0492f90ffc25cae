"""A bounded, thread-safe memo of *successful* signature verifications over immutable bytes.

Only pure signature results are remembered: the key is a SHA-256 digest over a domain tag and the exact
bytes that determine the result (the signed object's DER or JSON bytes, its signature where that is
separate, and the signer's certificate DER), so the same key can only ever mean the same verification.
Failures are never stored: a signature that did not verify is checked again on every call. Validity
windows, revocation and everything else that depends on the evaluation time are never memoized.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable


def memo_key(tag: bytes, *parts: bytes) -> bytes:
    """An unambiguous digest of ``tag`` and ``parts`` (each part is length-prefixed)."""
    h = hashlib.sha256(tag)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class SignatureMemo:
    """LRU set of keys whose signature verification succeeded."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self.enabled = True
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def verified(self, key: bytes, verify: Callable[[], bool]) -> bool:
        """``True`` when ``key`` verified before; otherwise run ``verify`` and remember only a success."""
        if self.enabled:
            with self._lock:
                if key in self._ok:
                    self._ok.move_to_end(key)
                    return True
        if verify() is not True:
            return False
        if self.enabled:
            with self._lock:
                self._ok[key] = None
                self._ok.move_to_end(key)
                while len(self._ok) > self.maxsize:
                    self._ok.popitem(last=False)
        return True

    def clear(self) -> None:
        with self._lock:
            self._ok.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ok)


#: Process-wide memo used by :mod:`enarx.attestation.intel.verify`.
SIGNATURES = SignatureMemo()
