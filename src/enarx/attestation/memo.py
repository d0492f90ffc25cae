"""The Verifier's one cache: parsed collateral and successful signature checks, bounded in bytes.

Owned by a :class:`~enarx.attestation.verifier.Verifier` (never module-level), so its size is the
Verifier's to set and it goes away with it. Two kinds of entries, one LRU:

* **parsed objects** (certificates, CRLs, Intel documents) keyed by their exact bytes, each charged an
  estimate of its memory (a multiple of its encoded size); an object larger than a quarter of the budget
  is parsed but not kept, so one hostile CRL cannot flush everything else;
* **signature successes**, keyed by a domain tag and identifiers of everything the result depends on (the
  signed object with its signature — a digest of both — and the signer's key). Failures are never
  remembered, and nothing that depends on the evaluation time (validity, revocation, freshness) is cached.

``memo=False`` turns off the signature memo only (the benchmark's "cold" verifier): every signature is
verified every time, while parsed collateral stays cached as a long-lived verifier holds it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_BYTES = 64 << 20
_SIGNATURE_COST = 128  # key digest + dict slot
_OVERHEAD = 2048  # Python objects around a parsed item


def digest(tag: bytes, *parts: bytes) -> bytes:
    """An unambiguous SHA-256 of ``tag`` and ``parts`` (each length-prefixed)."""
    h = hashlib.sha256(tag)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class VerifierCache:
    """A thread-safe LRU bounded by an estimate of the bytes it holds."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES, *, memo: bool = True) -> None:
        self.max_bytes = max_bytes
        self.memo = memo
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def parsed(self, kind: bytes, data: bytes, parse: Callable[[bytes], T], weight: int = 4) -> T:
        """``parse(data)``, remembered under ``data`` itself (errors propagate, never cached)."""
        key = (kind, data)
        hit = self._get(key)
        if hit is not None:
            return hit
        value = parse(data)
        self._put(key, value, weight * len(data) + _OVERHEAD)
        return value

    def signature(self, key: Hashable, verify: Callable[[], bool]) -> bool:
        """``verify()``; a success is remembered under ``key`` when the memo is on. ``key`` must identify
        every input of the verification (e.g. a tag, a digest of the signed bytes and signature, the signer's
        key digest, or :func:`digest` of them)."""
        if self.memo and self._get(key) is not None:
            return True
        if verify() is not True:
            return False
        if self.memo:
            self._put(key, True, _SIGNATURE_COST)
        return True

    def _get(self, key: Hashable) -> Any:
        # OrderedDict's C methods are atomic under the GIL: a hit needs no lock (an entry evicted meanwhile
        # only makes move_to_end raise KeyError)
        entry = self._entries.get(key)
        if entry is None:
            return None
        try:
            self._entries.move_to_end(key)
        except KeyError:
            pass
        return entry[0]

    def _put(self, key: Hashable, value: Any, cost: int) -> None:
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, cost)
            self._bytes += cost
            while self._bytes > self.max_bytes and self._entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
