import numpy as np
import pytest
import torch

from screening.errors import ScreeningInputError
from screening.metrics import (
    ThresholdArguments,
    all_positive_fbeta,
    best_threshold,
    choose_threshold,
    expected_missed,
    fbeta_at,
    honest_oof,
    honest_oof_fbeta,
    recall_interval,
    recall_lower_bound,
    recall_report,
    recall_sentence,
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
        "recall_ci_low",
        "recall_ci_high",
        "read_share",
        "wss",
        "includes",
        "includes_found",
        "recall_bound",
        "recall_target_certified",
        "roc_auc",
        "average_precision",
        "wss_95",
        "all_positive_fbeta",
    }
    assert m["roc_auc"] == pytest.approx(0.75)
    one_class = screening_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert one_class["roc_auc"] is None and one_class["wss_95"] is None and one_class["fbeta"] == 0.0


RECALL = ThresholdArguments("recall", 0.95, 0.95)


def test_clopper_pearson_bounds_known_values():
    # one-sided lower bound, all found: (1 - c) ** (1 / n)
    assert recall_lower_bound(23, 23, 0.95) == pytest.approx(0.8779, abs=5e-5)
    assert recall_lower_bound(23, 23, 0.95) == pytest.approx(0.05 ** (1 / 23))
    assert recall_lower_bound(59, 59, 0.95) == pytest.approx(0.05 ** (1 / 59)) and 0.05 ** (1 / 59) > 0.95
    assert recall_lower_bound(0, 10, 0.95) == 0.0
    # 9 of 10 at 95%: the 5% quantile of Beta(9, 2), a published exact one-sided bound
    assert recall_lower_bound(9, 10, 0.95) == pytest.approx(0.6058, abs=5e-5)
    # two-sided 95% (the usual exact interval)
    low, high = recall_interval(5, 10)
    assert (low, high) == (pytest.approx(0.1871, abs=5e-5), pytest.approx(0.8129, abs=5e-5))
    low, high = recall_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10)) and high == pytest.approx(0.3085, abs=5e-5)
    low, high = recall_interval(10, 10)
    assert low == pytest.approx(0.025 ** (1 / 10)) and low == pytest.approx(0.6915, abs=5e-5) and high == 1.0
    low, high = recall_interval(np.array([1, 2]), np.array([2, 2]))  # vectorised
    assert low.tolist() == pytest.approx([0.0126, 0.1581], abs=5e-5) and high.tolist() == pytest.approx(
        [0.9874, 1.0], abs=5e-5
    )


def test_recall_objective_threshold_by_hand():
    # 100 positives at 1.00 .. 0.01 (descending), 100 negatives interleaved just below each positive
    pos = np.arange(100, 0, -1) / 100
    labels = np.r_[np.ones(100, int), np.zeros(100, int)]
    probs = np.r_[pos, pos - 0.001]
    # point estimate (confidence 0.5): the highest threshold with 95 of 100 found is 0.06 (positives 1.00..0.06)
    choice = choose_threshold(labels, probs, rule=ThresholdArguments("recall", 0.95, 0.5))
    assert choice.threshold == 0.06 and choice.tp == 95 and choice.fp == 94 and choice.certified
    assert choice.recall_bound == 0.95 and choice.message is None
    # 95% confidence: the fewest found k with Beta(k, 101 - k).ppf(0.05) >= 0.95 is k = 99 -> threshold 0.02
    ks = np.arange(90, 101)
    first = int(ks[np.argmax(recall_lower_bound(ks, 100, 0.95) >= 0.95)])
    assert first == 99
    choice = choose_threshold(labels, probs, rule=RECALL)
    assert choice.threshold == 0.02 and choice.tp == 99 and choice.certified
    assert choice.recall_bound == pytest.approx(recall_lower_bound(99, 100, 0.95))
    # target 0.5 at 0.5: the highest threshold finding 50
    assert choose_threshold(labels, probs, rule=ThresholdArguments("recall", 0.5, 0.5)).threshold == 0.51
    # fbeta stays the default and is best_threshold
    assert choose_threshold(labels, probs).threshold == best_threshold(labels, probs).threshold


def test_recall_objective_never_splits_ties_and_prefers_higher_threshold():
    labels = np.array([1, 1, 0, 1, 0, 0])
    probs = np.array([0.9, 0.5, 0.5, 0.5, 0.2, 0.1])
    choice = choose_threshold(labels, probs, rule=ThresholdArguments("recall", 0.6, 0.5))
    assert choice.threshold == 0.5 and (choice.tp, choice.fp) == (3, 1)


def test_too_few_includes_message_and_fallback_threshold():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(23, int), np.zeros(200, int)]
    probs = np.r_[rng.uniform(0.3, 1, 23), rng.uniform(0, 0.6, 200)]
    choice = choose_threshold(labels, probs, rule=RECALL, data="validation")
    assert choice.certified is False
    assert choice.threshold == probs[:23].min() and choice.tp == 23  # the lowest threshold keeping every include
    assert choice.message == (
        "warning: 23 validation includes cannot certify recall 0.95 at confidence 0.95 "
        "(best possible lower bound 0.878); using the lowest threshold that keeps all 23"
    )
    m = screening_metrics(labels, probs, rule=RECALL)
    assert m["recall_target_certified"] is False and m["recall"] == 1.0 and m["threshold"] == choice.threshold
    # with 59 includes 95% / 0.95 can be certified (0.05 ** (1/59) > 0.95)
    labels = np.r_[np.ones(59, int), np.zeros(200, int)]
    probs = np.r_[np.linspace(1, 0.5, 59), np.linspace(0.49, 0, 200)]
    assert choose_threshold(labels, probs, rule=RECALL).certified is True
    # no include at all: nothing to certify, every record included
    none = choose_threshold(np.zeros(5, int), np.linspace(0, 1, 5), rule=RECALL)
    assert none.threshold == 0.0 and none.certified is False and "0 held-out includes" in none.message


def test_recall_report_and_expected_missed():
    labels = np.array([1] * 8 + [0] * 92)
    probs = np.r_[np.linspace(1, 0.6, 8), np.linspace(0.59, 0, 92)]
    probs[7] = 0.05  # one include ranked low
    r = recall_report(labels, probs, 0.6)
    low, high = recall_interval(7, 8)
    assert (r["includes_found"], r["includes"], r["records_read"], r["records"]) == (7, 8, 7, 100)
    assert (
        r["recall"] == 7 / 8 and r["recall_ci_low"] == pytest.approx(low) and r["recall_ci_high"] == pytest.approx(high)
    )
    assert r["read_share"] == 0.07 and r["wss"] == pytest.approx(0.93 - 1 / 8)
    # E = prevalence x records = 0.08 x 500 = 40; missed 40 x (1 - recall), interval from the recall interval
    m = expected_missed(0.08, 500, 7 / 8, low, high)
    assert m["expected_includes"] == pytest.approx(40)
    assert m["expected_missed"] == pytest.approx(5.0) and m["expected_missed_low"] == pytest.approx(40 * (1 - high))
    assert m["expected_missed_high"] == pytest.approx(40 * (1 - low))
    assert expected_missed(None, 500, 0.9, 0.8, 1.0)["expected_missed"] is None


def test_honest_kfold_recall_on_synthetic_oof():
    # 4 folds of 100 records, 25 includes each; fold scores at different levels, so a threshold from three folds
    # does not carry to the fourth
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(4), 100)
    labels = np.tile(np.r_[np.ones(25, int), np.zeros(75, int)], 4)
    probs = rng.uniform(0, 0.5, 400) + labels * 0.4 + folds * 0.05
    rule = ThresholdArguments("recall", 0.9, 0.95)
    result = honest_oof(labels, probs, folds, rule=rule)
    tp = fn = read = 0
    for k in range(4):
        inside = folds == k
        t = choose_threshold(labels[~inside], probs[~inside], rule=rule).threshold
        assert result["thresholds"][k] == t and result["certified"][k] is True  # 75 includes certify 0.9
        tp += int(np.sum((probs[inside] >= t) & (labels[inside] == 1)))
        fn += int(np.sum((probs[inside] < t) & (labels[inside] == 1)))
        read += int(np.sum(probs[inside] >= t))
    assert (result["includes_found"], result["includes"]) == (tp, tp + fn) and result["records_read"] == read
    assert result["recall"] == tp / 100 and result["read_share"] == read / 400
    low, high = recall_interval(tp, 100)
    assert result["recall_ci_low"] == pytest.approx(low) and result["recall_ci_high"] == pytest.approx(high)
    assert result["wss"] == pytest.approx((400 - read) / 400 - (1 - tp / 100))
    # the fbeta rule gives today's honest F-beta
    fbeta, thresholds = honest_oof_fbeta(labels, probs, folds)
    assert honest_oof(labels, probs, folds)["fbeta"] == fbeta and all(v is None for v in honest_oof(
        labels, probs, folds)["certified"].values())  # fmt: skip


def test_threshold_arguments_check_and_resolve():
    assert ThresholdArguments().resolved().as_dict() == {
        "threshold_objective": "fbeta",
        "target_recall": 0.95,
        "recall_confidence": 0.95,
    }
    saved = {"threshold_objective": "recall", "target_recall": 0.9, "recall_confidence": 0.5}
    assert ThresholdArguments().resolved(saved).as_dict() == saved
    assert ThresholdArguments(target_recall=0.8).resolved(saved).target_recall == 0.8  # a flag beats the saved value
    for args, flag in (
        (ThresholdArguments("f1"), "--threshold_objective"),
        (ThresholdArguments(target_recall=0.0), "--target_recall"),
        (ThresholdArguments(target_recall=1.2), "--target_recall"),
        (ThresholdArguments(recall_confidence=1.0), "--recall_confidence"),
        (ThresholdArguments(recall_confidence=0.0), "--recall_confidence"),
    ):
        with pytest.raises(ScreeningInputError, match=flag):
            args.check()
    assert ThresholdArguments(target_recall=1.0).check().target_recall == 1.0


def test_recall_sentence():
    results = {
        "honest_oof_recall": 22 / 23,
        "honest_oof_includes": 23,
        "honest_oof_includes_found": 22,
        "honest_oof_recall_ci_low": 0.781,
        "honest_oof_recall_ci_high": 0.999,
        "honest_oof_read_share": 0.123,
        "honest_oof_wss": 0.83,
        "threshold_objective": "recall",
        "target_recall": 0.95,
        "recall_confidence": 0.95,
        "honest_recall_target_certified": False,
        "expected_missed": 0.5,
        "expected_missed_low": 0.0,
        "expected_missed_high": 2.5,
        "predicted_includes": 70,
    }
    line = recall_sentence(results)
    assert line.startswith("honest OOF recall 22/23 = 0.957 (95% CI 0.781-0.999), read 12.3% of records, WSS 0.830")
    assert "threshold: recall >= 0.95 at 95% confidence (NOT certified" in line
    assert "70 predicted includes; expected missed includes 0.5 (0.0-2.5)" in line


def test_apply_threshold_is_the_models_rule(tester):
    """The library's rule and the copy in modeling/ (which imports nothing from screening/) agree, ties included."""
    from screening.metrics import apply_threshold

    model = tester.model(threshold=0.25)
    probabilities = np.r_[np.linspace(0, 1, 101), 0.25, np.nextafter(0.25, 0), np.nextafter(0.25, 1)]
    expected = model.predict_labels(torch.tensor(probabilities)).numpy()
    np.testing.assert_array_equal(apply_threshold(probabilities, 0.25), expected)
    assert apply_threshold([0.25], 0.25).tolist() == [1] and apply_threshold([0.2499], 0.25).tolist() == [0]
