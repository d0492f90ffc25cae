"""The ``[FORMATS=]FILE`` value of every trust-anchor option (``--trust-anchor``, ``--insecure-trust-anchor``).

One click type so the verifier, the Steward, the key broker and push accept the same spelling
(``snp=ark.pem``, ``sgx,tdx=root.pem`` or a plain file) and refuse a missing file or an unknown format the
same way, before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from enarx.attestation.anchors import AnchorError, split_spec


class AnchorSpec(click.ParamType):
    name = "[FORMATS=]FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        spec = str(value)
        try:
            _formats, path = split_spec(spec)
        except AnchorError as exc:
            self.fail(str(exc), param, ctx)
        if not Path(path).is_file():
            self.fail(f"{spec}: no such file", param, ctx)
        return spec


ANCHOR_SPEC = AnchorSpec()
