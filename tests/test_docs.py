"""The README and benchmarks/ speak of runs by date, commit and CPU: no numbered work periods or internal issue
numbers that a reader outside the project cannot follow."""

import re

import pytest

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "benchmarks").glob("*.md"))]
WORK_PERIOD = re.compile(r"\bsessions?\b[ -]?\d*|\bissue[ -]?#?\d+|(?<![\w/])#\d{1,3}\b(?! \()", re.IGNORECASE)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_work_periods_or_internal_issue_numbers(path):
    hits = [
        f"line {number}: {match.group(0)!r}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in WORK_PERIOD.finditer(line)
        if match.group(0) != "#471"  # the SIGNATE competition's own number
    ]
    assert not hits, f"{path.name}: {', '.join(hits[:10])}"
