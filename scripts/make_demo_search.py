#!/usr/bin/env python
"""Write data/demo/search.ris: 400 records of data/demo/train.csv (all 18 includes and the first 382 excludes,
shuffled with seed 0) as a RIS export without ID tags and without labels, the input of the README's
"Screening a fresh search" round trip. Derived from CC-BY 4.0 data (see data/demo/README.md)."""

from pathlib import Path

import pandas as pd
import rispy

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    train = pd.read_csv(REPO / "data/demo/train.csv", dtype=str, keep_default_na=False)
    chosen = pd.concat([train[train.judgement == "1"], train[train.judgement == "0"].head(382)])
    chosen = chosen.sample(frac=1, random_state=0)
    entries = [{"type_of_reference": "JOUR", "title": t, "abstract": a} for t, a in zip(chosen.title, chosen.abstract)]
    (REPO / "data/demo/search.ris").write_text(rispy.dumps(entries), encoding="utf-8")
