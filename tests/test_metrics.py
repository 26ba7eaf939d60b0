import numpy as np
import pytest

from screening.metrics import (
    all_positive_fbeta,
    best_threshold,
    fbeta_at,
    honest_oof_fbeta,
    screening_metrics,
    threshold_curve,
    wss_at_recall,
)


def brute_force(labels, probs, beta):
    """Try every distinct probability as threshold; keep the best (the higher one on ties)."""
    best = (-1.0, None)
    for t in sorted(set(probs.tolist()), reverse=True):
        f = fbeta_at(labels, probs, t, beta)
        if f > best[0] + 1e-15:
            best = (f, t)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_threshold_search_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels = (rng.random(n) < rng.uniform(0.02, 0.5)).astype(int)
    labels[0] = 1
    probs = np.round(rng.random(n) * 0.6 + labels * rng.uniform(0, 0.4), int(rng.integers(1, 3)))  # many ties
    beta = float(rng.choice([1.0, 3.0, 7.0]))
    result = best_threshold(labels, probs, beta)
    f, t = brute_force(labels, probs, beta)
    assert result.threshold == t
    assert result.fbeta == pytest.approx(f, abs=1e-12)
    assert result.fbeta == pytest.approx(fbeta_at(labels, probs, result.threshold, beta), abs=1e-12)


def test_tie_groups_are_never_split():
    labels = np.array([1, 0, 0, 1, 0])
    probs = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    curve = threshold_curve(labels, probs)
    assert curve["threshold"].tolist() == [0.9, 0.5, 0.1]
    assert curve["tp"].tolist() == [1, 2, 2] and curve["fp"].tolist() == [0, 2, 3]


def test_known_values():
    labels = np.array([1, 1, 0, 0, 0, 0])
    probs = np.array([0.9, 0.3, 0.8, 0.2, 0.1, 0.05])
    r = best_threshold(labels, probs, beta=7)
    # at t=0.3: tp=2 fp=1 fn=0 -> F = 50*2 / (50*2 + 0 + 1)
    assert r.threshold == 0.3 and r.fbeta == pytest.approx(100 / 101)
    assert (r.tp, r.fp, r.fn) == (2, 1, 0) and r.recall == 1.0 and r.precision == pytest.approx(2 / 3)
    assert all_positive_fbeta(labels, 7) == pytest.approx(100 / (100 + 4))


def test_wss_95_counts_tie_groups_whole():
    # 20 positives ranked first except one at the bottom: 95% recall after 19 positives.
    labels = np.array([1] * 19 + [0] * 80 + [1])
    probs = np.linspace(1, 0, labels.size)
    assert wss_at_recall(labels, probs) == pytest.approx((100 - 19) / 100 - 0.05)
    tied = np.r_[np.full(20, 0.9), np.linspace(0.8, 0, 80)]  # the first 20 records tie
    assert wss_at_recall(labels, tied) == pytest.approx((100 - 20) / 100 - 0.05)


def test_honest_oof_uses_other_folds_thresholds():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.1).astype(int)
    probs = rng.random(400) * 0.5 + labels * 0.3
    folds = np.arange(400) % 4
    honest, thresholds = honest_oof_fbeta(labels, probs, folds, beta=7)
    for k, t in thresholds.items():
        assert t == best_threshold(labels[folds != k], probs[folds != k], 7).threshold
    optimistic = best_threshold(labels, probs, 7).fbeta
    assert 0 < honest <= optimistic + 1e-12


def test_screening_metrics_keys_and_one_class():
    m = screening_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert set(m) == {
        "fbeta",
        "threshold",
        "precision",
        "recall",
        "roc_auc",
        "average_precision",
        "wss_95",
        "all_positive_fbeta",
    }
    assert m["roc_auc"] == pytest.approx(0.75)
    one_class = screening_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert one_class["roc_auc"] is None and one_class["wss_95"] is None and one_class["fbeta"] == 0.0
