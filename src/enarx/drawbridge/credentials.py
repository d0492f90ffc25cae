"""Where the CLI keeps its registry token: the OS keyring where one exists, else a 0600 file in the
user's config directory, or a credential helper (Enarx's protocol: ``HELPER insert ID`` with the token on
stdin, ``HELPER show ID`` printing it). ``ID`` is ``<issuer host>-<registry host>``.

Precedence when reading: ``--insecure-auth-token`` / ``ENARX_INSECURE_AUTH_TOKEN``, then the helper,
then the keyring, then the file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from enarx.errors import EnarxError

SERVICE = "enarx"


def credential_id(issuer: str, store_host: str) -> str:
    return f"{urlsplit(issuer).netloc or issuer}-{store_host}"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "enarx"


def _file() -> Path:
    return config_dir() / "credentials.json"


def _read_file() -> dict[str, str]:
    try:
        doc = json.loads(_file().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise EnarxError(f"cannot read {_file()}: {exc}; remove it and log in again") from None
    return {k: v for k, v in doc.items() if isinstance(v, str)} if isinstance(doc, dict) else {}


def _keyring():  # the keyring package is optional: used when installed and a backend is usable
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
    except Exception:  # noqa: BLE001 - a misconfigured keyring counts as none
        return None
    return keyring


def store(ident: str, token: str, helper: str | None = None) -> str:
    """Save the token; returns where it went (for the user)."""
    if helper:
        proc = subprocess.run([helper, "insert", ident], input=token.encode(), capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise EnarxError(f"credential helper {helper!r} failed to store the token (exit {proc.returncode})")
        return f"credential helper {helper}"
    ring = _keyring()
    if ring is not None:
        ring.set_password(SERVICE, ident, token)
        return "the OS keyring"
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = _read_file()
    tokens[ident] = token
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(tokens, fh)
    os.replace(tmp, path)
    return str(path)


def load(store_host: str, *, issuer: str | None = None, insecure_token: str | None = None,
         helper: str | None = None) -> str | None:
    """The token for ``store_host``, or None when the user has none (public reads need none)."""
    if insecure_token:
        return insecure_token
    if issuer is None:
        idents = [k for k in _read_file() if k.endswith(f"-{store_host}")]
        ident = idents[0] if len(idents) == 1 else None
    else:
        ident = credential_id(issuer, store_host)
    if helper:
        if ident is None:
            raise EnarxError("a credential helper needs --oidc-issuer to know which token to ask for")
        proc = subprocess.run([helper, "show", ident], capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise EnarxError(f"credential helper {helper!r} has no token for {ident} (exit {proc.returncode}): "
                             "log in with `enarx user login`")
        return proc.stdout.decode().strip() or None
    ring = _keyring()
    if ring is not None and ident is not None:
        token = ring.get_password(SERVICE, ident)
        if token:
            return token
    return _read_file().get(ident) if ident else None
