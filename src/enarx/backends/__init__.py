"""Keep backends: how a keep is launched, and the checks that decide whether a backend is available.

Every backend hands the host the same thing — a process-like :class:`~enarx.backends.base.KeepProcess`
with one channel that speaks the host↔keep protocol — so the host side never changes when a new kind of
keep appears. The registry (``enarx.backends.registry``) orders them and picks one.
"""
