"""`make demo`, the README's first command, runs to its end (it stopped halfway when it called an internal
function that had gone): every step's command must still work as the demo writes it."""

from __future__ import annotations

import subprocess

from conftest import ROOT, example


def test_the_demo_finishes():
    for lang, name in (("c", "hello"), ("rust", "hello"), ("go", "cat"), ("zig", "hello"), ("javascript", "main"),
                       ("python", "main")):
        example(lang, name)  # built, or a clear skip/failure
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, capture_output=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout.decode()
    assert proc.returncode == 0, (f"the demo stopped (status {proc.returncode}):\n{out[-3000:]}\n"
                                  f"{proc.stderr.decode()[-3000:]}")
    assert out.rstrip().endswith("Demo finished.")
    assert "echo over TLS 1.3, chain verified up to the Steward CA: b'hello, attested keep'" in out
