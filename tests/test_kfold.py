"""K-fold loop: split reproducibility, OOF coverage, fold skipping on rerun, fold ensembles, K-fold metrics."""

import json

import numpy as np
import pandas as pd
import pytest

from screening.errors import ScreeningInputError
from screening.kfold import (
    CrossValidationArguments,
    FoldOutput,
    average_folds,
    kfold_metrics,
    make_folds,
    rank_normalize,
    run_kfold,
)
from screening.metrics import best_threshold, honest_oof_fbeta


def toy_frame(n=60, positives=9, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=int)
    labels[rng.choice(n, positives, replace=False)] = 1
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "title": ["t"] * n, "labels": labels})


def test_fold_split_is_reproducible_and_stratified():
    labels = toy_frame()["labels"].to_numpy()
    folds = make_folds(labels, 3, seed=471)
    assert np.array_equal(folds, make_folds(labels, 3, seed=471))
    assert not np.array_equal(folds, make_folds(labels, 3, seed=1))
    assert sorted(np.unique(folds)) == [0, 1, 2]
    assert [int(labels[folds == k].sum()) for k in range(3)] == [3, 3, 3]


def test_group_split_keeps_groups_together():
    labels = toy_frame(n=60, positives=12)["labels"].to_numpy()
    groups = np.repeat(np.arange(12), 5)
    folds = make_folds(labels, 3, seed=471, groups=groups)
    for g in range(12):
        assert len(set(folds[groups == g])) == 1


def test_too_few_positives_for_the_folds_is_an_input_error():
    with pytest.raises(ScreeningInputError, match="--num_folds 5"):
        make_folds(np.array([1, 1, 0, 0, 0, 0, 0]), 5)


class CountingFit:
    """A fake model: the score of a record is fixed by its id, so every fold is deterministic."""

    def __init__(self):
        self.calls = 0

    def __call__(self, train, valid, test, fold_dir):
        self.calls += 1
        score = lambda frame: np.array([(int(i[1:]) * 37 % 100) / 100 for i in frame["id"]])  # noqa: E731
        return FoldOutput(score(valid), None if test is None else score(test) * 0 + self.calls / 10)


def test_oof_covers_every_id_once_and_rerun_skips_finished_folds(tmp_path):
    train, test = toy_frame(), pd.DataFrame({"id": ["r100", "r101", "r102"]})
    cv = CrossValidationArguments(num_folds=3)
    fit = CountingFit()
    first = run_kfold(train, test, fit, tmp_path, cv)
    assert fit.calls == 3 and first["skipped_folds"] == []
    oof = pd.read_csv(tmp_path / "oof.csv", dtype={"id": str})
    assert list(oof.columns) == ["id", "fold", "label", "probability"]
    assert sorted(oof["id"]) == sorted(train["id"]) and oof["id"].is_unique
    assert np.array_equal(oof["fold"], make_folds(train["labels"], 3, 471))
    for k in range(3):
        assert (tmp_path / f"fold_{k}" / "fold_results.json").is_file()
    # fold-averaged test predictions: folds returned 0.1, 0.2, 0.3
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert np.allclose(predictions["probability"], 0.2)

    again = run_kfold(train, test, fit, tmp_path, cv)
    assert fit.calls == 3 and again["skipped_folds"] == [0, 1, 2]
    assert again["honest_oof_fbeta"] == first["honest_oof_fbeta"]

    (tmp_path / "fold_1" / "fold_results.json").unlink()  # an unfinished fold is the only one refitted
    run_kfold(train, test, fit, tmp_path, cv)
    assert fit.calls == 4

    run_kfold(train, test, fit, tmp_path, cv, overwrite=True)
    assert fit.calls == 7


def test_rerun_with_another_split_refuses_to_mix_folds(tmp_path):
    train = toy_frame()
    run_kfold(train, None, CountingFit(), tmp_path, CrossValidationArguments(num_folds=3))
    with pytest.raises(ScreeningInputError, match="different fold split"):
        run_kfold(train, None, CountingFit(), tmp_path, CrossValidationArguments(num_folds=3, fold_seed=5))


def test_submission_uses_the_chosen_threshold(tmp_path):
    train, test = toy_frame(), pd.DataFrame({"id": ["r100", "r101"]})
    for rule in ("oof", "mean_fold"):
        results = run_kfold(
            train, test, CountingFit(), tmp_path / rule, CrossValidationArguments(num_folds=3, fold_threshold=rule)
        )
        key = "oof_threshold" if rule == "oof" else "mean_fold_threshold"
        assert results["threshold_used"] == results[key]
        predictions = pd.read_csv(tmp_path / rule / "predictions.csv")
        assert (predictions["prediction"] == (predictions["probability"] >= results[key])).all()
        lines = (tmp_path / rule / "submission.csv").read_text().splitlines()
        assert lines == [f"{i},{p}" for i, p in zip(predictions["id"], predictions["prediction"])]


def test_fold_ensembles_by_hand():
    folds = [np.array([0.2, 0.9]), np.array([0.6, 0.5])]
    assert np.allclose(average_folds(folds, "probability"), [0.4, 0.7])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = 1 / (1 + np.exp(-(logit(np.array([0.2, 0.9])) + logit(np.array([0.6, 0.5]))) / 2))
    assert np.allclose(average_folds(folds, "logit"), expected)
    with pytest.raises(ValueError):
        average_folds(folds, "median")


def test_rank_normalize_maps_test_scores_through_the_fold_scores():
    reference = np.array([0.1, 0.4, 0.4, 0.9])
    assert np.allclose(rank_normalize(reference, reference), [0.25, 0.75, 0.75, 1.0])
    assert np.allclose(rank_normalize(reference, [0.0, 0.5, 2.0]), [0.0, 0.75, 1.0])


def test_kfold_metrics_report_both_thresholds_and_both_aucs():
    rng = np.random.default_rng(0)
    labels = (rng.random(90) < 0.2).astype(int)
    folds = np.arange(90) % 3
    scores = np.clip(labels * 0.3 + rng.random(90) * 0.7 + folds * 0.5, 0, None)  # fold levels differ
    m = kfold_metrics(labels, scores, folds)
    per_fold = [best_threshold(labels[folds == k], scores[folds == k]).threshold for k in range(3)]
    assert m["mean_fold_threshold"] == pytest.approx(np.mean(per_fold))
    assert m["honest_oof_fbeta"] == pytest.approx(honest_oof_fbeta(labels, scores, folds)[0])
    assert m["oof_fbeta"] == pytest.approx(best_threshold(labels, scores).fbeta)
    assert m["mean_fold_roc_auc"] > m["oof_roc_auc"]  # the trap: pooled AUC below per-fold AUC
    ranked = np.concatenate([rank_normalize(scores[folds == k], scores[folds == k]) for k in range(3)])
    order = np.concatenate([np.flatnonzero(folds == k) for k in range(3)])
    m_rank = kfold_metrics(labels[order], ranked, folds[order])
    assert m_rank["oof_roc_auc"] > m["oof_roc_auc"]


def test_report_files_are_written(tmp_path):
    run_kfold(toy_frame(), None, CountingFit(), tmp_path, CrossValidationArguments(num_folds=3), command="cmd --x")
    assert (tmp_path / "threshold_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "summary.md").read_text()
    assert "honest_oof_fbeta" in summary and "threshold_curve.png" in summary and "cmd --x" in summary
    results = json.loads((tmp_path / "kfold_results.json").read_text())
    assert len(results["folds"]) == 3 and results["records"] == 60


def test_sample_negatives_keeps_every_positive_and_the_ratio():
    from screening.data import sample_negatives

    frame = pd.DataFrame({"id": [f"r{i}" for i in range(100)], "labels": [1 if i % 10 == 0 else 0 for i in range(100)]})
    sampled = sample_negatives(frame, 3, seed=1)
    assert sampled["labels"].sum() == 10 and len(sampled) == 40
    assert list(sampled["id"]) == sorted(sampled["id"], key=lambda i: int(i[1:]))  # original order kept
    assert sampled.equals(sample_negatives(frame, 3, seed=1))
    assert not sampled.equals(sample_negatives(frame, 3, seed=2))
    assert len(sample_negatives(frame, 50, seed=1)) == 100  # fewer negatives than asked: all of them


def test_sklearn_pipelines_are_always_k_fold():
    from screening.pipelines.sklearn import SklearnCrossValidationArguments

    assert SklearnCrossValidationArguments().num_folds == 5  # the default is in --help, not rewritten later
    with pytest.raises(ScreeningInputError, match="--num_folds must be at least 2; got 0"):
        SklearnCrossValidationArguments(num_folds=0).check()
    with pytest.raises(ScreeningInputError, match="--fold_ensemble must be one of"):
        SklearnCrossValidationArguments(fold_ensemble="median").check()
