"""Keep backends: how a keep is launched, and the checks that decide whether a backend is available.

Every backend hands the host the same thing — a process-like :class:`KeepProcess` with one channel that
speaks the host↔keep protocol — so the host side never changes when a new kind of keep appears.
"""

from enarx.backends.base import Backend, KeepProcess, Probe
from enarx.backends.registry import BACKENDS, get_backend, pick_backend

__all__ = ["BACKENDS", "Backend", "KeepProcess", "Probe", "get_backend", "pick_backend"]
