"""Stacking / blending on synthetic OOF files, and the scikit-learn run types (TF-IDF, transformer features)."""

import json

import numpy as np
import pandas as pd
import pytest

from screening.errors import ScreeningInputError
from screening.kfold import rank_normalize
from screening.metrics import best_threshold
from screening.pipelines.features import embed, load_encoder
from screening.pipelines.stacking import blend, stack_runs
from screening.text import TextOptions

from .conftest import write_demo_train


def synthetic_run(path, labels, folds, scores, test_scores=None):
    path.mkdir(parents=True)
    ids = [str(i) for i in range(len(labels))]
    pd.DataFrame({"id": ids, "fold": folds, "label": labels, "probability": scores}).to_csv(path / "oof.csv")
    if test_scores is not None:
        pd.DataFrame({"id": ["t0", "t1", "t2"], "probability": test_scores}).to_csv(path / "predictions.csv")
    return path


@pytest.fixture
def two_runs(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random(120) < 0.15).astype(int)
    labels[:6] = 1
    folds = np.arange(120) % 3
    a = np.clip(labels * 0.4 + rng.random(120) * 0.6, 0, 1)
    b = np.clip(labels * 0.2 + rng.random(120) * 0.3, 0, 1)  # another scale
    run_a = synthetic_run(tmp_path / "a", labels, folds, a, [0.9, 0.1, 0.5])
    run_b = synthetic_run(tmp_path / "b", labels, folds, b, [0.45, 0.05, 0.2])
    return run_a, run_b, labels, folds, a, b


def test_mean_and_rank_blends_by_hand(two_runs):
    _, _, labels, folds, a, b = two_runs
    oof, test = np.column_stack([a, b]), np.array([[0.9, 0.45], [0.1, 0.05], [0.5, 0.2]])
    blended, blended_test = blend(oof, labels, folds, test, "mean")
    assert np.allclose(blended, (a + b) / 2) and np.allclose(blended_test, test.mean(axis=1))
    blended, blended_test = blend(oof, labels, folds, test, "rank", weights=[3, 1])
    expected = 0.75 * rank_normalize(a, a) + 0.25 * rank_normalize(b, b)
    assert np.allclose(blended, expected)
    assert np.allclose(blended_test[0], 0.75 * rank_normalize(a, [0.9])[0] + 0.25 * rank_normalize(b, [0.45])[0])


def test_lr_stack_is_nested(two_runs):
    _, _, labels, folds, a, b = two_runs
    oof = np.column_stack([a, b])
    blended, _ = blend(oof, labels, folds, None, "lr")
    # a stacker fitted without fold 0 gives fold 0 the same scores whatever fold 0's labels are
    flipped = labels.copy()
    flipped[folds == 0] = 1 - flipped[folds == 0]
    assert np.allclose(blend(oof, flipped, folds, None, "lr")[0][folds == 0], blended[folds == 0])


def test_stack_runs_writes_blend_and_applies_oof_threshold_to_test(two_runs, tmp_path):
    run_a, run_b, labels, *_ = two_runs
    out = tmp_path / "stack"
    results = stack_runs([run_a, run_b], out, method="rank")
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == 120 and list(oof.columns) == ["id", "fold", "label", "probability"]
    assert results["oof_threshold"] == best_threshold(labels, oof["probability"]).threshold
    predictions = pd.read_csv(out / "predictions.csv")
    assert (predictions["prediction"] == (predictions["probability"] >= results["oof_threshold"])).all()
    assert json.loads((out / "stack_results.json").read_text())["method"] == "rank"
    assert (out / "threshold_curve.png").is_file() and (out / "summary.md").is_file()


def test_stack_refuses_runs_over_other_records(two_runs, tmp_path):
    run_a, *_ = two_runs
    other = synthetic_run(tmp_path / "c", np.array([0, 1, 0]), np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ScreeningInputError, match="other ids"):
        stack_runs([run_a, other], tmp_path / "s")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo")
    write_demo_train(path, 12, 108, test_rows=20)
    return path


@pytest.mark.parametrize("classifier", ["lr", "nb"])
def test_tfidf_run_writes_the_kfold_files(demo_files, tmp_path, classifier):
    from screening.pipelines.tfidf import main

    argv = ["--train_file", demo_files / "train.csv", "--test_file", demo_files / "test.csv"]
    argv += ["--output_dir", tmp_path, "--num_folds", "3", "--classifier", classifier, "--lowercase"]
    results = main(list(map(str, argv)))
    oof = pd.read_csv(tmp_path / "oof.csv", dtype={"id": str})
    assert len(oof) == 120 and oof["id"].is_unique and sorted(oof["fold"].unique()) == [0, 1, 2]
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 20
    assert results["oof_roc_auc"] > 0.7  # TF-IDF separates this review well even on 120 records


def test_features_embed_pooling_and_cache(tiny_encoder_dir, demo_files, tmp_path):
    encoder, tokenizer = load_encoder(tiny_encoder_dir)
    texts = ["a study of the trial", "the", "results of the study were good and the trial was long"]
    cls = embed(encoder, tokenizer, texts, TextOptions(), pooling="cls", max_length=16, batch_size=2)
    mean = embed(encoder, tokenizer, texts, TextOptions(), pooling="mean", max_length=16, batch_size=2)
    assert cls.shape == mean.shape == (3, 32) and not np.allclose(cls, mean)
    one_by_one = np.vstack([embed(encoder, tokenizer, [t], TextOptions(), "mean", 16) for t in texts])
    assert np.allclose(mean, one_by_one, atol=1e-5)  # batching by length does not change the vectors

    from screening.pipelines.features import main

    cache = tmp_path / "cache"
    argv = ["--model_name_or_path", tiny_encoder_dir, "--train_file", demo_files / "train.csv"]
    argv += ["--test_file", demo_files / "test.csv", "--num_folds", "3", "--feature_cache_dir", cache]
    argv += ["--max_seq_length", "32"]
    first = main(list(map(str, argv + ["--output_dir", tmp_path / "lr"])))
    assert len(list(cache.glob("*.npy"))) == 2  # train and test
    stamps = {p: p.stat().st_mtime for p in cache.glob("*.npy")}
    second = main(list(map(str, argv + ["--output_dir", tmp_path / "gbm", "--classifier", "lightgbm"])))
    assert {p: p.stat().st_mtime for p in cache.glob("*.npy")} == stamps  # read from the cache
    for result, name in ((first, "lr"), (second, "gbm")):
        assert 0 <= result["honest_oof_fbeta"] <= 1
        assert len(pd.read_csv(tmp_path / name / "oof.csv")) == 120


def test_features_classifier_c_auto_picks_c_inside_the_training_part():
    from sklearn.linear_model import LogisticRegressionCV

    from screening.errors import ScreeningInputError
    from screening.pipelines.features import AUTO_CS, FeatureArguments, make_classifier

    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.1).astype(int)
    x = rng.normal(size=(300, 20)) + labels[:, None] * np.r_[2.0, np.zeros(19)]
    model = make_classifier(FeatureArguments(model_name_or_path="m", C="auto"), labels).fit(x, labels)
    chosen = model[-1]
    assert isinstance(chosen, LogisticRegressionCV) and chosen.C_ in AUTO_CS
    assert model.predict_proba(x)[:, 1][labels == 1].mean() > model.predict_proba(x)[:, 1][labels == 0].mean()
    with pytest.raises(ScreeningInputError, match="--C must be a number or 'auto'; got 'big'"):
        make_classifier(FeatureArguments(model_name_or_path="m", C="big"), labels)
