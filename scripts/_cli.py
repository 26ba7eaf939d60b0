"""Shared start-up of the scripts: the repo root on sys.path, then `run` (one-line errors for bad input)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from screening.cli import run  # noqa: E402, F401
