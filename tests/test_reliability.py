"""Reliability: one-line errors on bad input before anything is written, atomic outputs, resume after SIGKILL,
reproducible runs and text edge cases. Runs go through run_classification.cli() in child processes."""

import json
import os
import signal
import sys
import time

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from screening import outputs
from screening.data import load_split
from screening.errors import ScreeningInputError
from screening.kfold import CrossValidationArguments, make_folds
from screening.outputs import last_complete_checkpoint, resolve_output_dir
from screening.text import build_texts, normalize_text

from . import cli_runner
from .cli_runner import run_command
from .conftest import DEMO_TRAIN, REPO

HEADER = "id,title,abstract,judgement\n"
LONG_ABSTRACT = ("Randomised trial of copper chelation in hepatic disease. " * 1800)[:100_000]
EDGE_ROWS = [  # id, title, abstract, label
    ("edge-empty-abstract", "Penicillamine for Wilson disease", "", "1"),
    ("edge-empty-title", "", "Zinc acetate therapy in hepatic copper overload: a cohort.", "0"),
    ("edge-long", "A very long abstract", LONG_ABSTRACT, "1"),
    ("edge-scripts", "Болезнь Вильсона и 威尔逊病", "مرض ويلسون; ウィルソン病の治療 — résumé naïve", "0"),
    ("edge-html", "CD4<sup>+</sup> cells &amp; copper", "<p>Background: P &lt; 0.05 and n > 3</p><br/>x", "1"),
    ("edge-both-empty", "", "", "0"),
]


# ---------------------------------------------------------------- data and helpers


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train.csv (126 rows, 13 positives), validation.csv (46 rows, 8 positives) and test.csv (the validation
    records without labels); the six edge-case records are in all three."""
    path = tmp_path_factory.mktemp("reliability-data")
    demo = pd.read_csv(DEMO_TRAIN, keep_default_na=False, dtype=str)
    pos, neg = demo[demo.judgement == "1"], demo[demo.judgement == "0"]
    edge = pd.DataFrame(EDGE_ROWS, columns=["id", "title", "abstract", "judgement"])
    train = pd.concat([pos.iloc[:10], neg.iloc[:110], edge]).sample(frac=1, random_state=0)
    validation = pd.concat([pos.iloc[10:16], neg.iloc[110:144], edge])
    train.to_csv(path / "train.csv", index=False)
    validation.to_csv(path / "validation.csv", index=False)
    validation.drop(columns="judgement").to_csv(path / "test.csv", index=False)
    return path


def args(tiny_encoder_dir, data, out, *extra, train=None, test=None):
    """A complete, valid command (train, tune the threshold, predict); `extra` flags are appended."""
    return [
        "--model_name_or_path",
        tiny_encoder_dir,
        "--train_file",
        train or data / "train.csv",
        "--validation_file",
        data / "validation.csv",
        "--test_file",
        test or data / "test.csv",
        "--output_dir",
        out,
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--head_type",
        "mean",
        "--max_seq_length",
        64,
        "--per_device_train_batch_size",
        8,
        "--per_device_eval_batch_size",
        16,
        "--learning_rate",
        "1e-3",
        "--num_train_epochs",
        3,
        "--save_strategy",
        "steps",
        "--save_steps",
        5,
        "--logging_steps",
        1,
        "--seed",
        7,
        "--data_seed",
        7,
        "--use_cpu",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        *extra,
    ]


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def snapshot(folder):
    """Every file under `folder` with its bytes (None if the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


# ---------------------------------------------------------------- 1. bad input: one line, exit 2, nothing written

GOOD = "1,A title,An abstract,0\n2,Another title,Another abstract,1\n3,Third,Third abstract,0\n4,Fourth,x,1\n"

BAD_FILES = {  # case: (flag whose file is bad, file name, content, fragments the message must hold)
    "missing_column": ("--train_file", "t.csv", "id,title,abstrct,judgement\n" + GOOD, ["no column 'abstract'",
                       "(set by --text_columns)", "columns present: id, title, abstrct, judgement", "'abstrct'?"]),
    "bad_labels": ("--train_file", "t.csv", HEADER + GOOD + "5,t,a,yes\n6,t,a,2\n7,t,a,\n8,t,a,NaN\n9,t,a,1.0\n",
                   ["column 'judgement' must hold 0 or 1", "rows 5, 6, 7, 8 (1-based, header not counted)",
                    "'', '2', 'NaN', 'yes'"]),
    "duplicate_ids": ("--train_file", "t.csv", HEADER + GOOD + "2,Again,Again,0\n",
                      ["column 'id' has duplicate ids ['2']", "rows 2, 5 (1-based"]),
    "empty_id": ("--train_file", "t.csv", HEADER + GOOD + ",No id,x,0\n", ["column 'id' is empty in rows 5 (1-based"]),
    "empty_file": ("--train_file", "t.csv", "", ["is empty"]),
    "header_only": ("--train_file", "t.csv", HEADER, ["has a header but no data rows"]),
    "not_utf8": ("--train_file", "t.csv", (HEADER + GOOD + "5,Caf\xe9 study,x,0\n").encode("latin-1"),
                 ["is not UTF-8 text (line 6,", "b'\\xe9'"]),
    "single_class": ("--train_file", "t.csv", HEADER + GOOD.replace(",1\n", ",0\n"),
                     ["the training data holds only label 0 (exclude)"]),
    "validation_single_class": ("--validation_file", "v.csv", HEADER + GOOD.replace(",1\n", ",0\n"),
                                ["the validation data holds only label 0"]),
    "test_without_id": ("--test_file", "s.csv", "title,abstract\nA,B\n", ["no column 'id' (set by --id_column)"]),
    "ragged_csv": ("--train_file", "t.csv", HEADER + GOOD + "5,a,b,0,extra\n", ["could not be parsed", "line 6"]),
    "jsonl_bad_labels": ("--train_file", "t.jsonl", '{"id": 1, "title": "a", "abstract": "b", "judgement": 0}\n'
                         '{"id": 2, "title": "a", "abstract": "b", "judgement": true}\n',
                         ["rows 2 (1-based", "'True'"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_file(case, tiny_encoder_dir, data, tmp_path):
    flag, name, content, fragments = BAD_FILES[case]
    bad = write(tmp_path / name, content)
    out = tmp_path / "out"
    argv = args(tiny_encoder_dir, data, out)
    argv[argv.index(flag) + 1] = bad
    result = cli_runner.run(argv, tmp_path / "logs")
    assert_one_line_error(result, flag, bad, *fragments)
    assert not out.exists()


BAD_FLAGS = {  # case: (extra flags, fragments)
    "missing_train_file": (["--train_file", "/nonexistent/train.csv"], ["--train_file: file not found"]),
    "misnamed_label_column": (["--label_column", "label"], ["no column 'label' (set by --label_column)",
                              "columns present: id, title, abstract, judgement"]),
    "bad_number": (["--num_train_epochs", "three"], ["--num_train_epochs", "'three'"]),
    "unknown_flag": (["--num_epochs", "3"], ["unknown arguments: --num_epochs 3"]),
    "bad_head": (["--head_type", "cnnn"], ["--head_type must be one of", "'cnnn'"]),
    "missing_model": (["--model_name_or_path", "/nonexistent/model"],
                      ["--model_name_or_path /nonexistent/model is neither a local folder nor a Hub model"]),
    "training_args_check": (["--load_best_model_at_end", "--eval_strategy", "epoch"],
                            ["--load_best_model_at_end requires the save and eval strategy to match"]),
    "bad_negative_sampling": (["--negative_sampling_ratio", "0"], ["--negative_sampling_ratio must be > 0", "got 0"]),
    "bad_attention_dropout": (["--attention_dropout", "1"], ["--attention_dropout must be in [0, 1)", "got 1.0"]),
    "resume_from_nothing": (["--resume_from_checkpoint", "/nonexistent/checkpoint-5"], ["--resume_from_checkpoint"]),
    "bad_precision": (["--prediction_precision", "fp16"], ["--prediction_precision", "invalid choice: 'fp16'"]),
    "bad_padding_bucket": (["--padding_bucket", "0"], ["--padding_bucket must be at least 1", "got 0"]),
    "bad_threshold_objective": (["--threshold_objective", "f1"], ["--threshold_objective must be one of fbeta, recall",
                                "'f1'"]),
    "bad_target_recall": (["--target_recall", "1.5"], ["--target_recall must be in (0, 1]", "got 1.5"]),
    "bad_recall_confidence": (["--recall_confidence", "1"], ["--recall_confidence must be in (0, 1)", "got 1.0"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flag(case, tiny_encoder_dir, data, tmp_path):
    extra, fragments = BAD_FLAGS[case]
    out = tmp_path / "out"
    result = cli_runner.run(args(tiny_encoder_dir, data, out, *extra), tmp_path / "logs")
    assert_one_line_error(result, *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("args.yaml", "do_train: true\noutput_dir: [unclosed\n", ["not valid YAML", "line 3, column 1"]),
        ("args.json", '{"do_train": true, "output_dir": "x",}', ["not valid JSON", "line 1, column 38"]),
        ("args.json", '["--do_train"]', ["expected a mapping"]),
        ("args.json", '{"output_dir": "x", "model_name_or_path": "m", "num_epochs": 3}', ["num_epochs"]),
    ],
)
def test_bad_arguments_file(name, content, fragments, tmp_path):
    path = write(tmp_path / name, content)
    assert_one_line_error(cli_runner.run([path], tmp_path / "logs"), path, *fragments)


def test_bad_arguments_file_from_the_command_line(tmp_path):
    """The real entry point, `python run_classification.py args.json`, in its own interpreter."""
    path = write(tmp_path / "args.json", '{"do_train": true,\n "output_dir": }')
    result = run_command([sys.executable, REPO / "run_classification.py", path], cwd=tmp_path)
    assert_one_line_error(result, path, "not valid JSON", "line 2, column 16")
    assert os.listdir(tmp_path) == ["args.json"]


def test_fold_checks():
    labels = np.array([0] * 50 + [1] * 3)
    assert sorted(set(make_folds(labels, 3, train_file="t.csv"))) == [0, 1, 2]
    with pytest.raises(ScreeningInputError, match=r"--num_folds 5 is more than the 3 positives \(label 1\) in "
                       r"--train_file t.csv: every fold needs one; use --num_folds 3 or fewer"):  # fmt: skip
        make_folds(labels, 5, train_file="t.csv")
    with pytest.raises(ScreeningInputError, match="K-fold needs at least 2"):
        make_folds(np.array([0] * 9 + [1]), 2, train_file="t.csv")
    with pytest.raises(ScreeningInputError, match="at least 2"):
        CrossValidationArguments(num_folds=1).check()


# ---------------------------------------------------------------- 2. atomic outputs, no overwrite, resume


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = write(tmp_path / "predictions.csv", "id,probability\n1,0.5\n")
    with pytest.raises(RuntimeError), outputs.atomic_path(target) as tmp:
        tmp.write_text("id,probability\n1,")  # half written...
        raise RuntimeError("killed")  # ...when the writer dies
    assert target.read_text() == "id,probability\n1,0.5\n"
    assert os.listdir(tmp_path) == ["predictions.csv"]  # no temp file left


def test_results_are_not_overwritten(tiny_encoder_dir, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write(out / "submission.csv", "1,1\n")
    before = snapshot(out)
    for extra in ([], ["--do_train"]):
        result = cli_runner.run(args(tiny_encoder_dir, data, out, *extra), tmp_path / "logs")
        assert_one_line_error(result, f"--output_dir {out} already holds results (submission.csv)")
        assert snapshot(out) == before


def test_resume_skips_incomplete_checkpoints(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        write(folder / "model.safetensors", b"x")
        if complete:
            write(folder / "trainer_state.json", "{}")
    write(tmp_path / "checkpoint-20.json", "{}")  # not a folder
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert resolve_output_dir(tmp_path, ["submission.csv"], do_train=True) == str(tmp_path / "checkpoint-10")
    assert resolve_output_dir(tmp_path, ["submission.csv"], do_train=True, overwrite=True) is None


# ---------------------------------------------------------------- 3, 4, 5. kill and resume, reproducibility, text


@pytest.fixture(scope="module")
def runs(tiny_encoder_dir, data, tmp_path_factory):
    """Two uninterrupted runs with one seed, and a run SIGKILLed after its first checkpoint then rerun."""
    root = tmp_path_factory.mktemp("runs")
    first, second, resumed = root / "first", root / "second", root / "resumed"
    started = [cli_runner.start(args(tiny_encoder_dir, data, out), root / "logs") for out in (first, second)]
    for run in started:
        assert run.wait().returncode == 0, run.stderr[-3000:]

    killed = cli_runner.start(args(tiny_encoder_dir, data, resumed), root / "logs")
    deadline = time.monotonic() + 240
    while not (resumed.is_dir() and last_complete_checkpoint(resumed)):
        assert killed.process.is_alive() and time.monotonic() < deadline, killed.stderr[-3000:]
        time.sleep(0.01)
    os.kill(killed.process.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (resumed / "model.safetensors").exists()  # it died while training
    at_kill = sorted(p.name for p in resumed.glob("checkpoint-*"))

    rerun = cli_runner.run(args(tiny_encoder_dir, data, resumed), root / "logs")  # the same command
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return {"first": first, "second": second, "resumed": resumed, "at_kill": at_kill, "rerun": rerun}


def step_losses(out):
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def comparable(metrics):
    return {k: v for k, v in metrics.items() if not k.endswith(("runtime", "per_second"))}


def test_resume_after_sigkill_ends_like_an_uninterrupted_run(runs):
    first, resumed = runs["first"], runs["resumed"]
    assert runs["at_kill"] and f"checkpoint-{3 * 16}" not in runs["at_kill"]  # killed before the last step
    assert f"Resuming from {resumed / runs['at_kill'][-1]}" in runs["rerun"].stdout + runs["rerun"].stderr
    weights, weights_resumed = load_file(first / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert weights.keys() == weights_resumed.keys()
    for name in weights:
        np.testing.assert_array_equal(weights[name], weights_resumed[name], err_msg=name)
    assert comparable(json.loads((resumed / "eval_results.json").read_text())) == comparable(
        json.loads((first / "eval_results.json").read_text())
    )
    # The loss of every step (logged at each step, and kept in the checkpoint's state across the kill) is the same.
    losses = {name: step_losses(out) for name, out in (("first", first), ("resumed", resumed))}
    assert losses["resumed"] == losses["first"] and len(losses["first"]) == 3 * 16
    # transformers' train_loss is the mean over the steps run by this call: here, those after the checkpoint.
    resumed_from = int(runs["at_kill"][-1].split("-")[1])
    train_loss = json.loads((resumed / "train_results.json").read_text())["train_loss"]
    assert train_loss == pytest.approx(np.mean(list(losses["first"].values())[resumed_from:]), rel=1e-9)
    for name in ("eval_predictions.csv", "predictions.csv", "submission.csv"):
        assert (resumed / name).read_bytes() == (first / name).read_bytes(), name


def test_same_seed_same_predictions(runs):
    first, second = runs["first"], runs["second"]
    for name in ("eval_predictions.csv", "predictions.csv", "submission.csv", "model.safetensors"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert comparable(json.loads((first / "eval_results.json").read_text())) == comparable(
        json.loads((second / "eval_results.json").read_text())
    )


def test_overwrite_output_dir_replaces_results(runs, data, tmp_path):
    """With --overwrite_output_dir a predict-only run replaces the results, and no earlier metric survives."""
    out = tmp_path / "out"
    out.mkdir()
    write(out / "submission.csv", "stale,1\n")
    write(out / "all_results.json", '{"stale_metric": 1}')
    argv = ["--model_name_or_path", runs["first"], "--test_file", data / "test.csv", "--do_predict"]
    argv += ["--output_dir", out, "--use_cpu", "--report_to", "none", "--max_seq_length", 64]
    assert_one_line_error(cli_runner.run(argv, tmp_path / "logs"), "already holds results")
    result = cli_runner.run([*argv, "--overwrite_output_dir"], tmp_path / "logs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "submission.csv").read_bytes() == (runs["first"] / "submission.csv").read_bytes()
    assert "stale_metric" not in json.loads((out / "all_results.json").read_text())


def test_no_temp_files_left(runs):
    for out in (runs["first"], runs["resumed"]):
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_edge_case_records_scored_alike_in_training_and_prediction(runs):
    """The six edge records are in the validation file (the threshold-tuning path) and the test file (the
    prediction path); each gets the same probability from both."""
    out = runs["first"]
    evaluated = pd.read_csv(out / "eval_predictions.csv", dtype={"id": str}).set_index("id")
    predicted = pd.read_csv(out / "predictions.csv", dtype={"id": str}).set_index("id")
    ids = [row[0] for row in EDGE_ROWS]
    assert set(ids) <= set(predicted.index) and np.isfinite(predicted.probability).all()
    np.testing.assert_allclose(evaluated.loc[ids, "probability"], predicted.loc[ids, "probability"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(evaluated.loc[ids, "prediction"], predicted.loc[ids, "prediction"])


def test_edge_case_texts_tokenize_alike_with_and_without_labels(data, tester):
    """Train/eval and predict build texts and token ids through one function; a 100k-character abstract is
    truncated, empty parts keep the layout, HTML markup is removed and entities unescaped."""
    import run_classification
    from screening.pipelines.finetune import tokenize

    tokenizer = tester.tokenizer()
    data_args = run_classification.DataTrainingArguments()
    training_args = run_classification.TrainingArguments(output_dir="unused", use_cpu=True, report_to="none")
    columns = data_args.text_column_list
    labelled = load_split(data / "validation.csv", columns, "id", "judgement", "--validation_file").tail(6)
    unlabelled = load_split(data / "test.csv", columns, "id", None, "--test_file").tail(6)
    encoded = [
        tokenize(frame.reset_index(drop=True), tokenizer, data_args, 64, training_args, "t")
        for frame in (labelled, unlabelled)
    ]
    assert encoded[0]["input_ids"] == encoded[1]["input_ids"]
    assert max(len(ids) for ids in encoded[0]["input_ids"]) == 64  # the long abstract, truncated
    texts = dict(zip(labelled.id, build_texts(labelled, columns, "[SEP]")))
    assert texts["edge-empty-abstract"] == "Penicillamine for Wilson disease [SEP]"
    assert texts["edge-empty-title"].startswith("[SEP] Zinc")
    assert texts["edge-both-empty"] == "[SEP]"
    assert texts["edge-html"] == "CD4+ cells & copper [SEP] Background: P < 0.05 and n > 3 x"
    assert texts["edge-scripts"].startswith("Болезнь Вильсона и 威尔逊病 [SEP] مرض ويلسون")


def test_normalize_text_leaves_comparisons_alone():
    assert normalize_text("a<b and c>d; <or=50%; P<0.05") == "a<b and c>d; <or=50%; P<0.05"
    assert normalize_text('H<sub>2</sub>O <a href="x">link</a>&nbsp;x\n\ty') == "H2O link x y"
