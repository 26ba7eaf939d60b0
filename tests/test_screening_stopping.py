"""The stopping rules' statistics against values computed independently (exact combinatorics, buscarpy's loop)."""

import math

import numpy as np
import pytest

from screening.active import stopping


def hypergeom_cdf(k, population, successes, draws):
    """P(X <= k) by the sum of exact binomial-coefficient ratios."""
    total = math.comb(population, draws)
    return sum(math.comb(successes, i) * math.comb(population - successes, draws - i) for i in range(k + 1)) / total


def buscar_h0(labels, records, target):
    """buscarpy's calculate_h0, written as its loop over urns, with the exact cdf above."""
    labels = list(labels)
    n, r = len(labels), sum(labels)
    p_values = []
    for m in range(1, n + 1):
        k = sum(labels[n - m :])
        k_hat = math.floor(r / target + 1 - (r - k))
        population = records - (n - m)
        p_values.append(0.0 if k_hat > population else hypergeom_cdf(k, population, k_hat, m))
    return min(p_values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hypergeometric_p_matches_buscar_loop_with_exact_sums(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(60) < np.linspace(0.5, 0.0, 60)).astype(int)  # a ranking that beats random
    for n in (10, 35, 60):
        assert stopping.hypergeometric_p(labels[:n], 120, 0.95) == pytest.approx(buscar_h0(labels[:n], 120, 0.95))


def test_hypergeometric_rejects_after_long_exclude_run_only():
    labels = np.r_[np.ones(20, int), np.zeros(300, int)]
    assert stopping.hypergeometric_p(labels[:25], 400, 0.95) > 0.05
    stream = stopping.evaluate.SimulatedReading(np.r_[labels, np.zeros(80, int)], np.arange(400))
    point = stopping.RULES["hypergeometric"](0.95, 0.95).first_stop(stream).position
    assert 25 < point < 320
    assert stopping.hypergeometric_p(labels[:point], 400) < 0.05 <= stopping.hypergeometric_p(labels[: point - 1], 400)


def test_frontier_is_the_edge_of_what_the_test_rejects():
    labels = np.r_[np.ones(15, int), np.zeros(5, int), [1], np.zeros(400, int)]
    front = stopping.frontier(labels, 1000, 0.95, 0.95)
    r = int(labels.sum())
    upper = round(r / front["recall_bound"])  # the most includes the search can hold at 95%
    p = stopping.hypergeometric_p_totals(labels, 1000, [upper, upper + 1])
    assert p[0] >= 0.05 > p[1]
    assert front["expected_missed_high"] == upper - r
    assert front["target_confidence"] == pytest.approx(1 - stopping.hypergeometric_p(labels, 1000, 0.95))


def test_audit_sample_size_is_the_fewest_that_rule_out_the_hidden_includes():
    # 23 includes read: floor(23 / 0.95) - 23 + 1 = 2 hidden includes would put recall under 0.95
    s = stopping.audit_sample_size(2310, 23, 0.95, 0.95)
    assert hypergeom_cdf(0, 2310, 2, s) < 0.05 <= hypergeom_cdf(0, 2310, 2, s - 1)
    # independently: P(no include in s of 2310 holding 2) = (2310 - s)(2309 - s) / (2310 x 2309)
    assert s == next(s for s in range(2311) if (2310 - s) * (2309 - s) / (2310 * 2309) < 0.05)
    # 19 read: 19/20 = 0.95 is on target, so 2 hidden are needed again
    assert stopping.audit_sample_size(500, 19, 0.95, 0.95) == stopping.audit_sample_size(500, 20, 0.95, 0.95)


def test_audit_bound_is_the_exact_upper_confidence_bound():
    bound = stopping.audit_bound(found=40, unread=300, sample=150, sample_includes=1, confidence=0.95)
    upper = int(bound["expected_missed_high"]) + 1  # includes left unread at most, before the sample's one
    assert hypergeom_cdf(1, 300, upper, 150) >= 0.05 > hypergeom_cdf(1, 300, upper + 1, 150)
    assert bound["recall_bound"] == pytest.approx(41 / (40 + upper))


def test_floor_matches_the_derivation():
    # all 23 includes first, then an audit of the other 2310 that must hold no include
    sample = next(s for s in range(2311) if (2310 - s) * (2309 - s) / (2310 * 2309) < 0.05)
    assert stopping.floor_read_share(23, 2333) == pytest.approx((23 + sample) / 2333)


def test_audit_keeps_its_confidence_over_many_draws():
    labels = np.r_[np.ones(21, int), np.zeros(60, int), [1, 1], np.zeros(1500, int)]  # 2 includes hidden late
    recalls = [stopping.audit_stop(labels, 0.95, 0.95, 50, seed)[1] / 23 for seed in range(200)]
    assert np.mean(np.asarray(recalls) >= 0.95) >= 0.95


def test_consecutive_excludes():
    assert stopping.consecutive_excludes_stop([1, 0, 0, 1, 0, 0, 0], 3) == 7
    assert stopping.consecutive_excludes_stop([1, 0, 0], 3) is None
