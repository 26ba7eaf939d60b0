#!/usr/bin/env python
"""The README demo's pretend reviewer: label every record of a next_batch.csv with its known judgement (looked up by
title and abstract in data/demo/train.csv) and append the rows to a labels file (id,judgement), as a person would."""

from pathlib import Path

import _cli
import pandas as pd

from screening.cli import ScriptArgumentParser

REPO = Path(__file__).resolve().parents[1]


def main():
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("next_batch", help="A next_batch.csv written by run_screening.py screen.")
    parser.add_argument("labels_file", help="The labels file to append to (created if absent).")
    args = parser.parse_args()
    truth = pd.read_csv(REPO / "data/demo/train.csv", dtype=str, keep_default_na=False)
    batch = pd.read_csv(args.next_batch, dtype=str, keep_default_na=False)
    rows = batch.merge(truth, on=["title", "abstract"], how="left", suffixes=("", "_demo"))[["id", "judgement"]]
    path = Path(args.labels_file)
    rows.to_csv(path, mode="a", header=not path.exists(), index=False)
    includes = int((rows.judgement == "1").sum())
    print(f"labelled {len(rows)} records ({includes} include{'' if includes == 1 else 's'}) into {path}")


if __name__ == "__main__":
    _cli.exit_on_input_error(main)
