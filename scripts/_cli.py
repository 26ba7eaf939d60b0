"""Shared start-up of the scripts: the repo root on sys.path, one-line errors for bad input."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(main):
    from screening.data import ScreeningInputError

    try:
        main()
    except ScreeningInputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
