"""End to end: run_classification.py in a subprocess on a tiny model and ~100 rows of real data."""

import json
import sys

import pandas as pd
import pytest

from .cli_runner import run_command
from .conftest import REPO, write_demo_train

TRAIN_ROWS, TEST_ROWS = 120, 40


def run_script(*args, cwd=REPO):
    return run_command([sys.executable, REPO / "run_classification.py", *args], cwd=cwd)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """120 training rows with some positives, 40 test rows, cut from the shipped demo data."""
    path = tmp_path_factory.mktemp("data")
    write_demo_train(path, 12, TRAIN_ROWS - 12, test_rows=TEST_ROWS)
    return path


@pytest.fixture(scope="module")
def trained_run(tiny_encoder_dir, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_script(
        "--model_name_or_path",
        tiny_encoder_dir,
        "--head_type",
        "mean",
        "--train_file",
        small_data / "train.csv",
        "--test_file",
        small_data / "test.csv",
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--output_dir",
        out,
        "--max_seq_length",
        64,
        "--num_train_epochs",
        2,
        "--per_device_train_batch_size",
        16,
        "--learning_rate",
        1e-3,
        "--eval_strategy",
        "epoch",
        "--save_strategy",
        "epoch",
        "--load_best_model_at_end",
        "--metric_for_best_model",
        "fbeta",
        "--use_cpu",
        "--loss_type",
        "weighted_bce",
        "--pos_weight",
        "auto",
        "--seed",
        3,
        "--report_to",
        "none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_metrics_json_keys(trained_run):
    out, _ = trained_run
    metrics = json.loads((out / "eval_results.json").read_text())
    for key in ("fbeta", "threshold", "precision", "recall", "roc_auc", "average_precision", "wss_95"):
        assert f"eval_{key}" in metrics, key
    assert 0 <= metrics["eval_fbeta"] <= 1 and 0 <= metrics["eval_threshold"] <= 1
    assert json.loads((out / "all_results.json").read_text())["eval_threshold"] == metrics["eval_threshold"]


def test_threshold_saved_in_model_config(trained_run):
    out, _ = trained_run
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "eval_results.json").read_text())
    assert config["threshold"] == metrics["eval_threshold"] and config["beta"] == 7.0
    assert config["head_type"] == "mean" and config["loss_type"] == "weighted_bce" and config["pos_weight"] > 1


def test_predictions_and_submission_format(trained_run):
    out, _ = trained_run
    test_ids = pd.read_csv(REPO / "data" / "demo" / "test.csv", keep_default_na=False, dtype=str).id.head(TEST_ROWS)
    predictions = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    assert list(predictions.columns) == ["id", "probability", "prediction"]
    assert predictions.id.tolist() == test_ids.tolist()
    threshold = json.loads((out / "config.json").read_text())["threshold"]
    assert ((predictions.probability >= threshold).astype(int) == predictions.prediction).all()
    lines = (out / "submission.csv").read_text().splitlines()
    assert len(lines) == TEST_ROWS
    rows = [line.split(",") for line in lines]
    assert [r[0] for r in rows] == test_ids.tolist()  # no header, test order
    assert {r[1] for r in rows} <= {"0", "1"} and all(len(r) == 2 for r in rows)
    assert [int(r[1]) for r in rows] == predictions.prediction.tolist()


def test_eval_predictions_cover_validation(trained_run):
    out, _ = trained_run
    frame = pd.read_csv(out / "eval_predictions.csv")
    assert list(frame.columns) == ["id", "probability", "label", "prediction"]
    assert len(frame) == 24 and frame.label.sum() >= 2  # 20% stratified split of 120 rows with 12 positives


def test_saved_model_predicts_with_its_threshold(trained_run, small_data, tmp_path):
    """Loading the trained folder and predicting again gives the same file, at the stored threshold."""
    out, _ = trained_run
    result = run_script(
        "--model_name_or_path",
        out,
        "--test_file",
        small_data / "test.csv",
        "--do_predict",
        "--output_dir",
        tmp_path,
        "--use_cpu",
        "--max_seq_length",
        64,
        "--report_to",
        "none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "submission.csv").read_text() == (out / "submission.csv").read_text()


def test_summary_printed(trained_run):
    _, result = trained_run
    assert "fbeta=" in result.stdout and "threshold=" in result.stdout and "Outputs in" in result.stdout


def test_help_explains_every_flag():
    result = run_script("--help")
    assert result.returncode == 0
    for flag in (
        "--head_type",
        "--text_columns",
        "--label_column",
        "--id_column",
        "--max_seq_length",
        "--validation_split_percentage",
        "--beta",
        "--loss_type",
        "--pos_weight",
        "--overwrite_output_dir",
    ):
        assert flag in result.stdout, flag


def columns(path):
    return list(pd.read_csv(path, nrows=0).columns)


def test_single_run_csv_columns(trained_run):
    out, _ = trained_run
    assert columns(out / "eval_predictions.csv") == ["id", "probability", "label", "prediction"]
    assert columns(out / "predictions.csv") == ["id", "probability", "prediction"]
    submission = pd.read_csv(out / "submission.csv", header=None)
    assert submission.shape == (TEST_ROWS, 2) and set(submission[1]) <= {0, 1}  # id, judgement; no header
    predictions = pd.read_csv(out / "predictions.csv")
    assert submission[1].tolist() == predictions["prediction"].tolist()
    assert sorted(p.name for p in out.glob("*.csv")) == ["eval_predictions.csv", "predictions.csv", "submission.csv"]
