"""run_classification.py --num_folds: K Trainer runs, OOF file, fold-averaged test predictions, rerun skips folds."""

import json

import numpy as np
import pandas as pd
import pytest

from .test_run_classification import columns, run_script

ARGS = [
    "--do_train",
    "--do_predict",
    "--num_folds",
    2,
    "--max_seq_length",
    32,
    "--num_train_epochs",
    1,
    "--per_device_train_batch_size",
    16,
    "--learning_rate",
    1e-3,
    "--use_cpu",
    "--report_to",
    "none",
    "--fold_ensemble",
    "logit",
    "--separator_token",
    "[TASEP]",
    "--lowercase",
    "--truncation",
    "head_tail",
    "--negative_sampling_ratio",
    2,
    "--attention_dropout",
    0.05,
    "--threshold_objective",
    "recall",
    "--target_recall",
    0.8,
    "--recall_confidence",
    0.5,
]


@pytest.fixture(scope="module")
def kfold_run(tiny_encoder_dir, tmp_path_factory):
    from .conftest import write_demo_train

    data = tmp_path_factory.mktemp("kfold-data")
    write_demo_train(data, 6, 54, test_rows=10)
    out = tmp_path_factory.mktemp("kfold") / "out"
    args = ["--model_name_or_path", tiny_encoder_dir, "--train_file", data / "train.csv"]
    args += ["--test_file", data / "test.csv", "--output_dir", out, *ARGS]
    result = run_script(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, args, result


def test_oof_covers_every_training_id_once(kfold_run):
    out, _, _ = kfold_run
    oof = pd.read_csv(out / "oof.csv", dtype={"id": str})
    assert list(oof.columns) == ["id", "fold", "label", "probability"]
    assert len(oof) == 60 and oof["id"].is_unique and sorted(oof["fold"].unique()) == [0, 1]
    for k in (0, 1):
        fold = pd.read_csv(out / f"fold_{k}" / "eval_predictions.csv", dtype={"id": str})
        assert set(fold["id"]) == set(oof.loc[oof.fold == k, "id"])
        assert (out / f"fold_{k}" / "model.safetensors").is_file()  # each fold keeps its model
        assert not list((out / f"fold_{k}").glob("checkpoint-*"))


def test_negative_sampling_trains_on_a_sample_and_scores_every_record(kfold_run):
    out, _, _ = kfold_run
    for k in (0, 1):  # each fold's training half: 3 positives and 27 negatives, of which 2 per positive are kept
        assert json.loads((out / f"fold_{k}" / "train_results.json").read_text())["train_samples"] == 9
        assert len(pd.read_csv(out / f"fold_{k}" / "eval_predictions.csv")) == 30


def test_attention_dropout_flag_reaches_every_fold_model(kfold_run):
    out, _, _ = kfold_run
    for k in (0, 1):  # the tiny encoder's own value is 0.0
        config = json.loads((out / f"fold_{k}" / "config.json").read_text())
        assert config["encoder_config"]["attention_probs_dropout_prob"] == 0.05


def test_test_predictions_are_the_fold_ensemble(kfold_run):
    out, _, _ = kfold_run
    folds = [pd.read_csv(out / f"fold_{k}" / "predictions.csv")["probability"].to_numpy() for k in (0, 1)]
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = 1 / (1 + np.exp(-(logit(folds[0]) + logit(folds[1])) / 2))
    predictions = pd.read_csv(out / "predictions.csv")
    assert np.allclose(predictions["probability"], expected)
    results = json.loads((out / "kfold_results.json").read_text())
    assert results["threshold_used"] == results["oof_threshold"]
    assert (predictions["prediction"] == (predictions["probability"] >= results["oof_threshold"])).all()
    for key in ("honest_oof_fbeta", "oof_fbeta", "mean_fold_threshold", "oof_roc_auc", "mean_fold_roc_auc"):
        assert key in results
    assert (out / "threshold_curve.png").is_file() and (out / "summary.md").is_file()


def test_fold_models_keep_their_text_options(kfold_run, tester):
    out, _, _ = kfold_run
    options = json.loads((out / "fold_0" / "text_options.json").read_text())
    assert options["separator_token"] == "[TASEP]" and options["lowercase"] and options["truncation"] == "head_tail"
    assert "[TASEP]" in (out / "fold_0" / "tokenizer.json").read_text()
    config = json.loads((out / "fold_0" / "config.json").read_text())
    assert config["encoder_config"]["vocab_size"] == len(tester.vocab) + 1  # resized for the new token


def test_rerun_skips_finished_folds(kfold_run):
    out, args, _ = kfold_run
    before = (out / "oof.csv").read_text()
    result = run_script(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped_folds=[0, 1]" in result.stdout
    assert (out / "oof.csv").read_text() == before


def test_recall_objective_reaches_every_fold_the_oof_and_the_honest_thresholds(kfold_run):
    from screening.metrics import ThresholdArguments, choose_threshold, honest_oof

    out, _, result = kfold_run
    rule = ThresholdArguments("recall", 0.8, 0.5)
    for k in (0, 1):  # each fold's model carries the rule with its threshold
        config = json.loads((out / f"fold_{k}" / "config.json").read_text())
        assert (config["threshold_objective"], config["target_recall"], config["recall_confidence"]) == (
            "recall",
            0.8,
            0.5,
        )
        fold = pd.read_csv(out / f"fold_{k}" / "eval_predictions.csv")
        assert config["threshold"] == choose_threshold(fold.label, fold.probability, rule=rule).threshold
    oof = pd.read_csv(out / "oof.csv")
    results = json.loads((out / "kfold_results.json").read_text())
    assert results["oof_threshold"] == choose_threshold(oof.label, oof.probability, rule=rule).threshold
    assert results["oof_recall"] >= 0.8 and results["oof_recall_target_certified"] is True
    honest = honest_oof(oof.label, oof.probability, oof.fold, rule=rule)
    assert results["honest_oof_recall"] == honest["recall"]
    assert results["honest_oof_recall_ci_low"] == honest["recall_ci_low"]
    assert results["expected_missed"] is not None and results["predicted_includes"] >= 0
    assert "honest OOF recall" in result.stdout


def test_kfold_run_csv_columns(kfold_run):
    out, _, _ = kfold_run
    assert columns(out / "oof.csv") == ["id", "fold", "label", "probability"]
    assert columns(out / "predictions.csv") == ["id", "probability", "prediction"]
    assert pd.read_csv(out / "submission.csv", header=None).shape[1] == 2
    assert sorted(p.name for p in out.glob("*.csv")) == ["oof.csv", "predictions.csv", "submission.csv"]
    for fold in sorted(out.glob("fold_*")):
        assert columns(fold / "eval_predictions.csv") == ["id", "probability", "label"]
        assert columns(fold / "predictions.csv") == ["id", "probability"]
        assert sorted(p.name for p in fold.glob("*.csv")) == ["eval_predictions.csv", "predictions.csv"]
        assert (fold / "fold_results.json").is_file()
