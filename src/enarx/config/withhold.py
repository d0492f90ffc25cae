"""Refusing a private package's Enarx.toml without quoting it to the host.

A keep reports why it stopped to its host, and an Enarx.toml error normally quotes the offending value (a
path, a name, an address). For a package the keep fetched with its own certificate — possibly private — the
report names only *where* the file is wrong: a key from Enarx.toml's own vocabulary, an entry's index, and
for a syntax error the line and column. It is built from those tokens alone, never from the message's text,
so nothing the publisher wrote can reach the host through it.
"""

from __future__ import annotations

import re

from enarx.config.parse import _FIELDS, KNOWN_TOP_LEVEL

_FIELD_NAMES = sorted({"kind", "env", *(f for required, optional in _FIELDS.values() for f in required | optional),
                       "memory", "timeout"}, key=len, reverse=True)
_KEY = re.compile(rf"(?:{'|'.join(sorted(KNOWN_TOP_LEVEL, key=len, reverse=True))})(?:\[\d{{1,6}}\])?"
                  rf"(?:\.(?:{'|'.join(_FIELD_NAMES)})\b)?")
_POSITION = re.compile(r"\(at line (\d{1,7}), column (\d{1,7})\)")


def location(message: str, source: str) -> str:
    """Where an Enarx.toml error (``"{source}: {key}: …"``) points: ``files[3].path``, ``line 2, column 7``,
    or ``the file`` — only Enarx.toml keys and numbers."""
    rest = message[len(source) + 2:] if message.startswith(f"{source}: ") else ""
    if rest.startswith("not valid TOML") and (position := _POSITION.search(rest)):
        return f"line {position[1]}, column {position[2]}"
    key = _KEY.match(rest)
    return key[0] if key else "the file"


def withheld(message: str, source: str, origin: str) -> str:
    """The one-line refusal the host may see for an error in ``origin``'s (private) Enarx.toml."""
    return (f"{origin}: its Enarx.toml cannot be used, at {location(message, source)} (details withheld: the "
            "package may be private; check it with `enarx config check` where its files may be read)")
