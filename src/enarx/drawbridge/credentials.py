"""Where the CLI keeps its registry token: the OS keyring where one exists, else a 0600 file in the
user's config directory, or a credential helper (Enarx's protocol: ``HELPER insert ID`` with the token on
stdin, ``HELPER show ID`` printing it). ``ID`` is ``<issuer host>-<registry host>``; the
issuer and registry hosts are kept as separate fields, and a token is found only for the very registry it
was stored for.

Precedence when reading: ``--insecure-auth-token`` / ``ENARX_INSECURE_AUTH_TOKEN``, then the helper,
then the keyring, then the file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from enarx.errors import EnarxError

SERVICE = "enarx"


class CredentialId(NamedTuple):
    """Whose token: the issuer's and the registry's ``host[:port]``, each its own field, so a token is only
    ever found for exactly the registry it was stored for (never one whose name ends the same way)."""

    issuer: str
    host: str

    def __str__(self) -> str:  # Enarx's credential-helper and keyring ID
        return f"{self.issuer}-{self.host}"


def credential_id(issuer: str, store_host: str) -> CredentialId:
    return CredentialId(urlsplit(issuer).netloc or issuer, store_host)


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "enarx"


def _file() -> Path:
    return config_dir() / "credentials.json"


def _read_file() -> list[dict[str, str]]:
    """The file's records ``{"issuer", "host"[, "token"]}`` (no token: it is in the keyring)."""
    try:
        doc = json.loads(_file().read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise EnarxError(f"cannot read {_file()}: {exc}; remove it and log in again") from None
    records = doc.get("credentials") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        return []  # an older file, whose IDs cannot be told apart safely: log in again
    return [r for r in records if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("issuer", "host"))
            and isinstance(r.get("token", ""), str)]


def _write_file(records: list[dict[str, str]]) -> Path:
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"credentials": records}, fh)
    os.replace(tmp, path)
    return path


def _keyring() -> Any:  # the keyring package is optional: used when installed and a backend is usable
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


def store(ident: CredentialId, token: str, helper: str | None = None) -> str:
    """Save the token; returns where it went (for the user)."""
    if helper:
        proc = subprocess.run([helper, "insert", str(ident)], input=token.encode(), capture_output=True,
                              timeout=60)
        if proc.returncode != 0:
            raise EnarxError(f"credential helper {helper!r} failed to store the token (exit {proc.returncode})")
        return f"credential helper {helper}"
    ring = _keyring()
    record = {"issuer": ident.issuer, "host": ident.host}
    if ring is not None:
        ring.set_password(SERVICE, str(ident), token)
    else:
        record["token"] = token
    records = [r for r in _read_file() if (r["issuer"], r["host"]) != tuple(ident)]
    path = _write_file([*records, record])  # with a keyring: the index of whose tokens it holds
    return "the OS keyring" if ring is not None else str(path)


def load(store_host: str, *, issuer: str | None = None, insecure_token: str | None = None,
         helper: str | None = None) -> str | None:
    """The token for exactly ``store_host``, or None when the user has none (public reads need none)."""
    if insecure_token:
        return insecure_token
    records = [r for r in _read_file() if r["host"] == store_host]
    if issuer is not None:
        ident: CredentialId | None = credential_id(issuer, store_host)
        records = [r for r in records if r["issuer"] == ident.issuer]
    else:
        ident = CredentialId(records[0]["issuer"], store_host) if len(records) == 1 else None
    if helper:
        if ident is None:
            raise EnarxError("a credential helper needs --oidc-issuer to know which token to ask for")
        proc = subprocess.run([helper, "show", str(ident)], capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise EnarxError(f"credential helper {helper!r} has no token for {ident} (exit {proc.returncode}): "
                             "log in with `enarx user login`")
        return proc.stdout.decode().strip() or None
    ring = _keyring()
    if ring is not None and ident is not None:
        token = ring.get_password(SERVICE, str(ident))
        if token:
            return token
    return records[0].get("token") or None if len(records) == 1 else None
