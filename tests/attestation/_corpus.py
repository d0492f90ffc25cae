"""Locating the shared corpus (never copied into the repository); imported by tests as ``_corpus``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

CORPORA = Path(os.environ.get("ENARX_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"))
HAVE_CORPUS = (CORPORA / "cases.tsv").is_file()
NO_CORPUS = f"shared corpus not found at {CORPORA} (set ENARX_CORPORA)"


def corpus_rows(*formats: str) -> list[dict[str, str]]:
    """Rows of cases.tsv (empty when the corpus is absent, so parametrized tests collect as skipped)."""
    if not HAVE_CORPUS:
        return []
    with open(CORPORA / "cases.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [r for r in rows if not formats or r["format"] in formats]
