"""Where fncall keeps its files: one data directory for fetched models and the memory database."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "FNCALL_DATA_DIR"


def data_dir() -> Path:
    """`$FNCALL_DATA_DIR`, else `~/.local/share/fncall`."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".local" / "share" / "fncall"
