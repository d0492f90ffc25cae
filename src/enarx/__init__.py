"""Enarx for Python: run WebAssembly (WASI) workloads inside keeps, with attestation.

    >>> import enarx
    >>> result = enarx.run("hello.wasm", enarx.KeepOptions(args=["world"]))
    >>> result.status
    0
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
__version__ = "0.1.0"
__all__ = ["KeepOptions", "KeepResult", "__version__", "run"]

if TYPE_CHECKING:
    from enarx.api import KeepOptions, KeepResult, run


def __getattr__(name: str) -> object:  # lazy, so that `enarx --version` stays fast
    if name in ("KeepOptions", "KeepResult", "run"):
        from enarx import api

        return getattr(api, name)
    raise AttributeError(name)
