"""The recall objective end to end: a run that chooses its threshold for a recall target, saves the rule with
the threshold, says when its includes are too few, and a fresh load that predicts at the saved threshold."""

import json
import sys

import pandas as pd
import pytest

from .cli_runner import run_command
from .conftest import REPO, write_demo_train
from .test_run_classification import run_script

WARNING = (
    "warning: {n} validation includes cannot certify recall 0.9 at confidence 0.95 (best possible lower bound "
    "{bound:.3f}); using the lowest threshold that keeps all {n}"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("recall-data")
    write_demo_train(path, 12, 108, test_rows=30)
    return path


@pytest.fixture(scope="module")
def recall_run(tiny_encoder_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("recall-run") / "out"
    result = run_script(
        "--model_name_or_path", tiny_encoder_dir, "--train_file", data / "train.csv", "--test_file",
        data / "test.csv", "--do_train", "--do_eval", "--do_predict", "--output_dir", out, "--max_seq_length", 32,
        "--num_train_epochs", 1, "--per_device_train_batch_size", 16, "--learning_rate", 1e-3, "--use_cpu",
        "--report_to", "none", "--seed", 3, "--threshold_objective", "recall", "--target_recall", 0.9,
        "--recall_confidence", 0.95,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_recall_threshold_saved_with_its_rule_and_too_few_includes_said_once(recall_run):
    out, result = recall_run
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "eval_results.json").read_text())
    valid = pd.read_csv(out / "eval_predictions.csv")
    n = int(valid.label.sum())  # 20% of 12 includes: too few to certify 0.9 at 95% (needs 29 all found)
    assert config["threshold_objective"] == "recall" and config["target_recall"] == 0.9
    assert config["recall_confidence"] == 0.95
    # the fallback: the lowest threshold that keeps every validation include
    assert config["threshold"] == metrics["eval_threshold"] == valid.probability[valid.label == 1].min()
    assert metrics["eval_recall"] == 1.0 and metrics["eval_recall_target_certified"] is False
    assert metrics["threshold_objective"] == "recall"
    line = WARNING.format(n=n, bound=0.05 ** (1 / n))
    log = result.stdout + result.stderr
    assert log.count(line) == 1, log[-3000:]
    held_out = config["threshold_validation"]
    assert held_out["records"] == 24 and held_out["includes"] == n and held_out["recall"] == 1.0
    assert held_out["recall_ci_low"] == pytest.approx(0.025 ** (1 / n)) and held_out["recall_ci_high"] == 1.0
    assert held_out["read_share"] == pytest.approx((valid.probability >= config["threshold"]).mean())
    assert held_out["recall_target_certified"] is False


def test_report_fields_and_expected_missed(recall_run):
    out, _ = recall_run
    metrics = json.loads((out / "eval_results.json").read_text())
    for key in ("recall_ci_low", "recall_ci_high", "read_share", "wss"):
        assert metrics[f"eval_{key}"] is not None, key
    assert metrics["eval_wss"] == pytest.approx(1 - metrics["eval_read_share"] - (1 - metrics["eval_recall"]))
    predict = json.loads((out / "predict_results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    expected = config["threshold_validation"]["includes"] / 24 * 30  # prevalence x test records
    assert predict["predict_expected_includes"] == pytest.approx(expected)
    assert predict["predict_expected_missed"] == pytest.approx(0.0)  # validation recall 1
    low = config["threshold_validation"]["recall_ci_low"]
    assert predict["predict_expected_missed_high"] == pytest.approx(expected * (1 - low))
    assert predict["threshold_objective"] == "recall" and predict["predict_threshold"] == config["threshold"]
    summary = (out / "summary.md").read_text()
    assert "**Recall you can report:** validation recall" in summary and "expected missed includes" in summary
    assert "NOT certified" in summary and "| eval_recall_ci_low |" in summary
    assert (
        "highest whose one-sided 95% Clopper-Pearson lower bound on recall reaches 0.9"
        in (out / "README.md").read_text()
    )


def test_fresh_load_predicts_at_the_saved_threshold(recall_run, data, tmp_path):
    """Predict-only from the saved folder: same submission, its rule in predict_results.json; and loaded in a
    fresh process, pipeline() + screen label at config.threshold with the rule in the config."""
    out, _ = recall_run
    result = run_script(
        "--model_name_or_path", out, "--test_file", data / "test.csv", "--do_predict", "--output_dir", tmp_path,
        "--use_cpu", "--max_seq_length", 32, "--report_to", "none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "submission.csv").read_text() == (out / "submission.csv").read_text()
    predict = json.loads((tmp_path / "predict_results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert predict["predict_threshold"] == config["threshold"] and predict["threshold_objective"] == "recall"
    assert predict["predict_expected_missed_high"] is not None  # from the held-out figures saved with the model
    code = f"""
import json
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from screening.predict import screen
model = AutoModelForSequenceClassification.from_pretrained({str(out)!r}, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained({str(out)!r}, trust_remote_code=True)
classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, trust_remote_code=True)
texts = ["a randomised trial of penicillamine in wilson disease", "the", "zinc and copper in the liver"]
labelled = screen(classifier, texts)
c = model.config
print(json.dumps({{"labelled": labelled, "threshold": c.threshold, "objective": c.threshold_objective,
                  "target": c.target_recall, "confidence": c.recall_confidence}}))
"""
    run = run_command([sys.executable, "-c", code], cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads(run.stdout[run.stdout.index('{"labelled"') :])
    assert loaded["threshold"] == config["threshold"]
    assert (loaded["objective"], loaded["target"], loaded["confidence"]) == ("recall", 0.9, 0.95)
    for record in loaded["labelled"]:
        assert record["label"] == ("include" if record["probability"] >= config["threshold"] else "exclude")


def test_tfidf_kfold_recall_objective_reports_honest_recall(data, tmp_path):
    from screening.metrics import ThresholdArguments, honest_oof, recall_interval
    from screening.pipelines.tfidf import main

    argv = ["--train_file", data / "train.csv", "--test_file", data / "test.csv", "--output_dir", tmp_path]
    argv += ["--num_folds", "3", "--threshold_objective", "recall", "--target_recall", "0.8"]
    argv += ["--recall_confidence", "0.5"]
    results = main(list(map(str, argv)))
    saved = json.loads((tmp_path / "kfold_results.json").read_text())
    oof = pd.read_csv(tmp_path / "oof.csv")
    labels, scores, folds = oof.label.to_numpy(), oof.probability.to_numpy(), oof.fold.to_numpy()
    honest = honest_oof(labels, scores, folds, rule=ThresholdArguments("recall", 0.8, 0.5))
    assert saved["honest_oof_recall"] == honest["recall"] == results["honest_oof_recall"]
    low, high = recall_interval(honest["includes_found"], 12)
    assert saved["honest_oof_recall_ci_low"] == pytest.approx(low)
    assert saved["honest_oof_recall_ci_high"] == pytest.approx(high)
    assert saved["threshold_objective"] == "recall" and saved["target_recall"] == 0.8
    assert saved["oof_recall"] >= 0.8 and saved["oof_recall_target_certified"] is True
    assert [f["honest_threshold"] for f in saved["folds"]] == [honest["thresholds"][k] for k in range(3)]
    assert saved["predicted_includes"] == int(pd.read_csv(tmp_path / "predictions.csv").prediction.sum())
    assert saved["expected_missed"] == pytest.approx(12 / 120 * 30 * (1 - honest["recall"]))
    assert "**Recall you can report:** honest OOF recall" in (tmp_path / "summary.md").read_text()
    fold = json.loads((tmp_path / "fold_0" / "fold_results.json").read_text())
    assert fold["recall"] >= 0.8 and fold["read_share"] is not None and fold["recall_ci_low"] is not None


@pytest.mark.parametrize(
    "script, flags, fragment",
    [
        ("run_tfidf.py", ["--recall_confidence", "1"], "error: --recall_confidence must be in (0, 1); got 1.0"),
        ("stack.py", ["--threshold_objective", "f7"], "error: --threshold_objective must be one of fbeta, recall"),
    ],
)
def test_scripts_bad_threshold_flags_exit_2(script, flags, fragment, data, tmp_path):
    argv = ["--output_dir", tmp_path / "out", *flags]
    argv += ["--runs", tmp_path / "a", tmp_path / "b"] if script == "stack.py" else ["--train_file", data / "train.csv"]
    run = run_command([sys.executable, REPO / "scripts" / script, *argv], cwd=REPO)
    assert run.returncode == 2 and fragment in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
