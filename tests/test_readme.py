"""The README's first steps, run as written: every block marked `<!-- walkthrough -->` runs, in order, in
one bash session started in the checkout (a user's terminal), with a temporary HOME and TMPDIR; a block
marked `<!-- walkthrough: output -->` must be exactly the stdout of the executable block before it. When the
README and the CLI drift apart, this fails and says which block. Servers a block starts in the background
(`… &`) are the block's to stop; should it fail first, the session stops them when it exits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import NamedTuple

from conftest import ROOT, example

MARKED = re.compile(r"^<!-- walkthrough(?P<output>: output)? -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$",
                    re.MULTILINE | re.DOTALL)
SEPARATOR = "\x1e"  # printed between blocks, so that each block's stdout can be told apart


class Block(NamedTuple):
    line: int
    lang: str
    body: str
    expected: str | None  # the output block after it, if any


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    for match in MARKED.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match["output"]:
            assert blocks and blocks[-1].expected is None, f"README line {line}: output block without a command"
            blocks[-1] = blocks[-1]._replace(expected=match["body"])
        else:
            assert match["lang"] in ("sh", "python"), f"README line {line}: cannot run a {match['lang']} block"
            blocks.append(Block(line, match["lang"], match["body"], None))
    return blocks


def session_script(blocks: list[Block]) -> str:
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT"]
    for index, block in enumerate(blocks):
        parts.append(f"printf '{SEPARATOR}%s\\n' {index}; printf '{SEPARATOR}%s\\n' {index} >&2")
        if block.lang == "sh":
            parts.append(block.body)
        else:  # as a user would run it: the environment's python, from the same directory
            parts.append(f"python - <<'README_PYTHON'\n{block.body}README_PYTHON")
    return "\n".join(parts) + "\n"


def test_walkthrough_blocks_are_found():
    """The walk-through covers what a newcomer does first; removing a marker must not go unnoticed."""
    blocks = readme_blocks((ROOT / "README.md").read_text())
    text = "\n".join(block.body for block in blocks)
    for command in ("enarx run ", "enarx config init", "enarx config check", "enarx platform info",
                    "enarx attest simulate pki", "enarx steward serve", "--simulate-tee", "import enarx"):
        assert command in text, f"no README walk-through block runs {command!r}"
    assert all(block.expected is not None for block in blocks if block.lang == "python")


def test_readme_walkthrough(tmp_path: Path):
    for lang, name in (("c", "hello"), ("go", "args_env"), ("zig", "cat"), ("javascript", "main"),
                       ("c", "http_server")):
        example(lang, name)  # built, or a clear skip/failure
    blocks = readme_blocks((ROOT / "README.md").read_text())
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ENARX_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), TMPDIR=str(tmp_path), PATH=_without_venv(env.get("PATH", "")))
    # a session of its own: should it hang, it is stopped with everything it started in the background
    with subprocess.Popen(["bash", "-c", session_script(blocks)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
    outputs = stdout.decode().split(SEPARATOR)[1:]
    errors = stderr.decode().split(SEPARATOR)[1:]
    ran = len(outputs)
    if proc.returncode != 0:
        failed = blocks[ran - 1]
        raise AssertionError(f"README block at line {failed.line} failed (status {proc.returncode}):\n"
                             f"{failed.body}\nstderr: {errors[-1] if errors else stderr.decode()}")
    assert ran == len(blocks)
    for block, output in zip(blocks, outputs, strict=True):
        stdout = output.partition("\n")[2]
        if block.expected is not None:
            assert stdout == block.expected, (
                f"README block at line {block.line}: its output differs from the README's\n"
                f"README:\n{block.expected}\nactual:\n{stdout}")
    assert (home / ".cache" / "enarx").is_dir()  # the default cache lives under HOME, as documented


def _without_venv(path: str) -> str:
    """PATH without our environment, so that the README's own `source .venv/bin/activate` is what finds enarx."""
    venv = str(ROOT / ".venv")
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and not p.startswith(venv))
