"""Enarx for Python: run WebAssembly (WASI) workloads inside keeps, with attestation.

    >>> import enarx
    >>> result = enarx.run("hello.wasm", enarx.KeepOptions(args=["world"]))
    >>> result.status
    0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["KeepOptions", "KeepResult", "run", "__version__"]

if TYPE_CHECKING:
    from enarx.api import KeepOptions, KeepResult, run


def __getattr__(name: str) -> Any:  # lazy, so that `enarx --version` stays fast
    if name in ("KeepOptions", "KeepResult", "run"):
        from enarx import api

        return getattr(api, name)
    raise AttributeError(name)
