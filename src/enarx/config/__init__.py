"""Enarx.toml: the typed model, the parser and the ``config init`` template."""

from enarx.config.model import (
    Config,
    ConnectFile,
    DirFile,
    FileEntry,
    Limits,
    ListenFile,
    NullFile,
    Secret,
    SecretsFile,
    StdioFile,
    default_config,
)
from enarx.config.parse import load_config, parse_config, parse_size
from enarx.config.template import TEMPLATE

__all__ = [
    "TEMPLATE",
    "Config",
    "ConnectFile",
    "DirFile",
    "FileEntry",
    "Limits",
    "ListenFile",
    "NullFile",
    "Secret",
    "SecretsFile",
    "StdioFile",
    "default_config",
    "load_config",
    "parse_config",
    "parse_size",
]
