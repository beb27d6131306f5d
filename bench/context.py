"""What every benchmark is given: where charts go and whether to run the short smoke-test version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.report import DOCS_DIR


@dataclass(frozen=True)
class BenchContext:
    """`quick` cuts repeats and sizes to the minimum so the harness can be checked in seconds; its numbers
    are marked in the report as not to be quoted."""

    quick: bool = False
    charts_dir: Path = DOCS_DIR
