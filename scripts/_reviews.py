"""The benchmarks' real reviews beyond the six shared ones, and where each review's file lies."""

from pathlib import Path

CLEF = (  # the 13 CLEF TAR 2017 topics, in data_dir/clef2017
    "CLEF2017_CD007427",
    "CLEF2017_CD008691",
    "CLEF2017_CD008760",
    "CLEF2017_CD009020",
    "CLEF2017_CD009135",
    "CLEF2017_CD009185",
    "CLEF2017_CD009944",
    "CLEF2017_CD010023",
    "CLEF2017_CD010386",
    "CLEF2017_CD010542",
    "CLEF2017_CD010632",
    "CLEF2017_CD010633",
    "CLEF2017_CD010705",
)


def review_file(data_dir, review):
    """<data_dir>/<review>.csv, else <data_dir>/clef2017/<review>.csv (the 13 CLEF TAR 2017 topics)."""
    path = Path(data_dir) / f"{review}.csv"
    return path if path.is_file() else Path(data_dir) / "clef2017" / f"{review}.csv"
