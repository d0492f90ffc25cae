"""The error types every layer raises; the CLI turns each into one ``Error: …`` line."""

from __future__ import annotations


class EnarxError(Exception):
    """Base of every error a user may see. Its message is one line that says what failed and what to do."""

    exit_status = 1


class ConfigError(EnarxError):
    """An Enarx.toml (or CLI option) is malformed or names something impossible."""


class BackendError(EnarxError):
    """A keep backend is unknown, unavailable or misconfigured, or cannot launch a keep."""


class WorkloadError(EnarxError):
    """The workload module cannot be loaded: missing file, not WebAssembly, bad package directory."""


class KeepError(EnarxError):
    """The keep failed while running: a trap, a limit, a crash, or a protocol violation."""

    def __init__(self, message: str, exit_status: int = 1):
        super().__init__(message)
        self.exit_status = exit_status


class UsageError(EnarxError):
    """A command line that cannot run: an unknown option, a missing or malformed value (exit status 2)."""

    exit_status = 2
