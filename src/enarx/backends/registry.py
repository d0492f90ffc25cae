"""The backends, in order of preference, and Enarx's selection rules and messages."""

from __future__ import annotations

from enarx.backends.base import Backend
from enarx.backends.hardware import SgxBackend
from enarx.backends.nil import NilBackend
from enarx.backends.vm.backends import KvmBackend, SevBackend, TdxBackend
from enarx.errors import BackendError

#: Most protective first; auto-selection takes the first available one (nil always is).
BACKENDS: tuple[Backend, ...] = (SgxBackend(), SevBackend(), TdxBackend(), KvmBackend(), NilBackend())


def get_backend(name: str) -> Backend:
    """The backend called ``name``, checked for availability and configuration like Enarx does."""
    for backend in BACKENDS:
        if backend.name == name.lower():
            break
    else:
        known = ", ".join(b.name for b in BACKENDS)
        raise BackendError(f'Keep backend identifier "{name}" is unknown. Known backends: {known}.')
    if not backend.have():
        raise BackendError(
            f'Keep backend "{backend.name}" is not available on this platform. '
            "Please check with `enarx platform info`."
        )
    if not backend.configured():
        raise BackendError(
            f'Keep backend "{backend.name}" is available on this platform but the machine is misconfigured. '
            "Please check with `enarx platform info`."
        )
    return backend


def pick_backend(name: str | None = None) -> Backend:
    if name:
        return get_backend(name)
    for backend in BACKENDS:
        if backend.auto_select and backend.have():
            return backend
    raise BackendError("No supported backend found. Please check your machine with `$ enarx platform info`.")
