"""Shared start-up of the scripts: the repo root on sys.path, then `exit_on_input_error` (one-line errors)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from screening.errors import exit_on_input_error  # noqa: E402, F401
