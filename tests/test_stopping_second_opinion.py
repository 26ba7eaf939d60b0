"""scripts/stopping_second_opinion.py: a second ranker's check before a base rule's stop, on a constructed run
whose answer is known by hand (10 includes first, 2 hidden at rows 150 and 160)."""

import sys

import numpy as np
import pytest

from screening.active.stopping import RULES, evaluate
from screening.errors import ScreeningInputError

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import stopping_second_opinion  # noqa: E402

RECORDS = 200


class Fixed:
    """A ranker whose scores never change: `fit_score` returns them whatever it is fitted on."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float64)

    def fit_score(self, rows, labels):
        return self.scores


def constructed():
    labels = np.zeros(RECORDS, int)
    labels[[*range(10), 150, 160]] = 1  # 12 includes: 0.9 needs 11, so one hidden include at least
    order = np.r_[0, 11, 1:11, 12:RECORDS]  # priors (an include, an exclude), then by row: the default ranker's order
    default = Fixed(-np.arange(RECORDS))
    retrains = [(n, default.scores) for n in range(2, RECORDS + 1)]
    return labels, evaluate.SimulatedReading(labels[order], order, retrains), default


def run(second_scores, m):
    labels, reading, default = constructed()
    rule = RULES["counting_process"](0.9, 0.5)
    first = rule.first_stop(reading)
    assert first is not None and first.position < 150  # the base rule stops before the hidden includes
    out = stopping_second_opinion.second_opinion_run(default, Fixed(second_scores), labels, reading, rule, m, 0.9)
    return first.position, out


def test_without_a_check_the_run_stops_at_the_base_rules_first_stop():
    first, out = run(-np.arange(RECORDS), 0)
    assert out == {"stop": first, "found": 10, "checks": 0, "by_checks": 0, "n_target": 151}  # row 150 read 151st


def test_a_check_that_finds_nothing_stops_m_records_later():
    first, out = run(-np.arange(RECORDS), 5)  # the second ranker agrees with the first: its top 5 are excludes
    assert out == {"stop": first + 5, "found": 10, "checks": 1, "by_checks": 0, "n_target": 151}


def test_a_check_that_finds_the_hidden_includes_reads_on_and_checks_again():
    second = np.zeros(RECORDS)
    second[[150, 160]] = 1.0  # the second ranker puts the hidden includes first
    first, out = run(second, 5)
    assert out["found"] == 12 and out["by_checks"] == 2 and out["checks"] == 2  # the second check finds nothing
    assert out["stop"] > first + 10  # read on with the default ranker between the two checks
    assert out["n_target"] <= first + 5  # the 11th include came with the first check


def test_check_sizes_must_be_whole_numbers():
    with pytest.raises(ScreeningInputError, match=r"--check_sizes: comma-separated whole numbers; got '5,x'"):
        stopping_second_opinion.parse(["--readings_dir", "r", "--data_dir", "d", "--check_sizes", "5,x"])
