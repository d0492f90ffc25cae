"""``enarx platform info``: every backend with the checks that decide its availability."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from enarx import __version__


@click.group()
def platform() -> None:
    """Inspect this machine's keep backends."""


def _system_info() -> str:
    u = os.uname()
    return f"{u.sysname} {u.release} {u.version} {u.machine}"


def _row_json(probe: Any) -> dict[str, Any]:
    return {
        "name": probe.name.strip(),
        "pass": probe.passed,
        "info": probe.info if probe.info is not None else "null",
        "mesg": probe.mesg if probe.mesg is not None else "null",
        "data": [_row_json(c) for c in probe.children],
    }


def info_json() -> dict[str, Any]:
    from enarx.backends.registry import BACKENDS

    return {
        "version": __version__,
        "system_info": _system_info(),
        "backends": [
            {"backend": b.name, "data": [_row_json(p) for p in b.data_probes()]} for b in BACKENDS
        ],
    }


@platform.command()
@click.option("-j", "--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """Show every backend and whether it can run keeps here."""
    from enarx.backends.registry import BACKENDS

    if as_json:
        click.echo(json.dumps(info_json(), indent=2))
        return
    color = sys.stdout.isatty()

    def icon(ok: bool) -> str:
        mark = "✔" if ok else "✗"
        return click.style(mark, fg="green" if ok else "red") if color else mark

    click.echo(f"Enarx version {__version__}")
    click.echo(f"System Info: {_system_info()}")
    for backend in BACKENDS:
        rows = backend.data_probes()
        config_rows = backend.config_probes()
        available = backend.have()
        click.echo(f"{icon(available)} Backend: {backend.name} — {backend.description}")
        messages: list[str] = []
        for probe in rows + config_rows:
            _show(probe, 1, icon, messages)
        click.echo(f"    protects: {backend.protects}")
        for mesg in messages:
            click.echo(f"    {mesg}")
    click.echo("Note: `dir` preopens and stdio are visible to the host on every backend.")


def _show(probe: Any, depth: int, icon: Any, messages: list[str]) -> None:
    """One probe row, indented by depth; remedies of failed rows are collected into ``messages``."""
    text = f"{'  ' * depth}{icon(probe.passed)} {probe.name.strip()}"
    if probe.info is not None:
        text += f": {probe.info}"
    click.echo(text)
    if not probe.passed and probe.mesg:
        messages.append(probe.mesg)
    for child in probe.children:
        _show(child, depth + 1, icon, messages)
