"""Enarx for Python: run WebAssembly (WASI) workloads inside keeps, with attestation.

    >>> import enarx
    >>> result = enarx.run("hello.wasm", enarx.KeepOptions(args=["world"], env={"MODE": "demo"}))
    >>> result.status
    0

``run`` raises an :class:`EnarxError` (one of ``ConfigError``, ``WorkloadError``, ``BackendError``,
``KeepError``) when the keep cannot start; how the workload ended is in the returned :class:`KeepResult`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
__version__ = "0.1.0"

__all__ = ["BackendError", "ConfigError", "EnarxError", "KeepError", "KeepOptions", "KeepResult", "UsageError",
           "WorkloadError", "__version__", "run"]
_API = ("KeepOptions", "KeepResult", "run")

if TYPE_CHECKING:
    from enarx.api import KeepOptions, KeepResult, run
    from enarx.errors import BackendError, ConfigError, EnarxError, KeepError, UsageError, WorkloadError


def __getattr__(name: str) -> object:  # lazy, so that `enarx --version` stays fast
    if name in _API:
        from enarx import api

        return getattr(api, name)
    if name in __all__:
        from enarx import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'enarx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
