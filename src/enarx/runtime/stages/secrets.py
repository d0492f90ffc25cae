"""Stage: give the workload its ``[[secrets]]`` — as files in a read-only directory and as environment variables.

A secret is a file of the package. From an encrypted package it comes out of the keep's memory (it was
decrypted there and never staged with the package's data files); from a plaintext package directory (for
development) it is read like the package's ``dir`` entries are. The directory (``[[files]] kind =
"secrets"``, default guest path ``/run/secrets``) is private (0700, files 0400) and deleted when the keep
ends; in a nil keep it is on the host's disk, like everything of a nil keep (the README's security model).
An ``env`` secret must be UTF-8 text without NUL; it replaces any ``--env`` of the same name (the only
value of that name the workload sees). Secrets survive nothing: a restarted keep gets them again only by attesting again (no sealing).
"""

from __future__ import annotations

import os
import tempfile

from enarx.runtime.launch import Launch, StageFailure
from enarx.runtime.plan import SECRETS_PENDING, Preopen

MAX_SECRET = 16 << 20
MAX_ENV_SECRET = 128 << 10


def provide_secrets(launch: Launch) -> None:
    plan = launch.need_plan()
    config = plan.config
    pending = [i for i, p in enumerate(plan.preopens) if p.host == SECRETS_PENDING]
    if config is None or (not config.secrets and not pending):
        return
    values = {secret.name: _read(launch, secret.name, secret.path) for secret in config.secrets}
    for secret in config.secrets:
        if secret.env is None:
            continue
        try:
            text = values[secret.name].decode()
        except UnicodeDecodeError:
            text = "\0"
        if "\0" in text or len(values[secret.name]) > MAX_ENV_SECRET:
            raise StageFailure(f"secret {secret.name!r} cannot be the environment variable {secret.env}: it must be "
                               f"UTF-8 text without NUL, at most {MAX_ENV_SECRET} bytes")
        # a workload's getenv() takes the first match: no other value of this name may precede the secret
        plan.env[:] = [(k, v) for k, v in plan.env if k != secret.env]
        plan.env.append((secret.env, text))
    if pending:
        directory = _directory(launch, values)
        for i in pending:
            plan.preopens[i] = Preopen(directory, plan.preopens[i].guest, False)


def _read(launch: Launch, name: str, path: str) -> bytes:
    if launch.package_files is not None:  # an encrypted package, opened in the keep's memory
        data = launch.package_files.get(path)
        if data is None:
            raise StageFailure(f"secret {name!r}: the package has no file {path}")
        return bytes(data)
    base = os.path.dirname(launch.request.config_source or "") or "."
    try:
        fd = os.open(os.path.join(base, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_SECRET + 1)
    except OSError as exc:
        raise StageFailure(f"secret {name!r}: cannot read {path} of the package: {exc.strerror}") from None
    if len(data) > MAX_SECRET:
        raise StageFailure(f"secret {name!r} is larger than {MAX_SECRET} bytes")
    return data


def _directory(launch: Launch, values: dict[str, bytes]) -> str:
    """The private, read-only secrets directory (inside the launch's staging directory)."""
    if launch.staging_dir is None:
        launch.staging_dir = tempfile.mkdtemp(prefix="enarx-package-")  # 0700, removed when the keep ends
    directory = os.path.join(launch.staging_dir, "secrets")
    try:
        os.mkdir(directory, 0o700)
        for name, data in values.items():
            fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    except OSError as exc:
        raise StageFailure(f"cannot stage the secrets: {exc.strerror}") from None
    return directory
