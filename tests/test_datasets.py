"""`--dataset_name`: a local folder laid out as a Hub dataset repository gives the same run as the same data in
files; mistakes are one-line errors."""

import json
import os
import sys

import pandas as pd
import pytest

from screening.data import DatasetArguments, DatasetSplit
from screening.errors import ScreeningInputError

from . import cli_runner
from .cli_runner import run_command
from .conftest import REPO, write_demo_train
from .test_entry_points import assert_one_line_error

CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train.csv
  - split: test
    path: data/test.csv
- config_name: labelled_only
  data_files:
  - split: train
    path: data/train.csv
---
# A screening set laid out as a Hub dataset repository
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """`files/`: train.csv (80 rows, 10 includes) and test.csv (30 rows); `hub_dataset/`: the same files in
    a dataset repository layout, with two configs in its README.md."""
    root = tmp_path_factory.mktemp("datasets")
    files = root / "files"
    files.mkdir()
    write_demo_train(files, 10, 70, test_rows=30)
    repo = root / "hub_dataset" / "data"
    repo.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        (repo / name).write_bytes((files / name).read_bytes())
    (repo.parent / "README.md").write_text(CARD)
    return root


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """datasets' cache under the test's folder, and no attempt to reach the Hub."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run_script(script, args, cwd):
    return run_command([sys.executable, REPO / script, *args], cwd=cwd, env=os.environ.copy())


def read_outputs(out, names):
    return {name: pd.read_csv(out / name, dtype=str, keep_default_na=False) for name in names}


def test_split_reads_like_the_file(data):
    frame = DatasetSplit(str(data / "hub_dataset"), None, "train").read()
    from_file = pd.read_csv(data / "files" / "train.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(frame[from_file.columns], from_file)


def test_default_splits_and_configs(data):
    name = str(data / "hub_dataset")
    train, validation, test = DatasetArguments(dataset_name=name).data_sources()
    assert (train.split, validation, test.split) == ("train", None, "test")
    train, validation, test = DatasetArguments(dataset_name=name, dataset_config_name="labelled_only").data_sources()
    assert (train.config, validation, test) == ("labelled_only", None, None)
    assert DatasetArguments(dataset_name=name).data_sources(test=False)[2] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test_split_name": "holdout"}, "--test_split_name: dataset {name} has no split 'holdout'; its splits: train"),
        ({"train_split_name": "x"}, "--train_split_name: dataset {name} has no split 'x'"),
        ({"dataset_name": None, "test_split_name": "test"}, "--test_split_name needs --dataset_name"),
    ],
)
def test_split_mistakes(data, kwargs, message):
    name = str(data / "hub_dataset")
    with pytest.raises(ScreeningInputError) as err:
        DatasetArguments(**{"dataset_name": name, **kwargs}).data_sources()
    assert message.format(name=name) in str(err.value)


def test_missing_test_split_for_prediction(data):
    args = DatasetArguments(dataset_name=str(data / "hub_dataset"), dataset_config_name="labelled_only")
    with pytest.raises(ScreeningInputError, match="--do_predict: dataset .* has no split 'test'"):
        args.data_sources(require_test=True)


def test_tfidf_run_from_a_dataset_folder_equals_the_files(data, tmp_path):
    common = ["--num_folds", 3]
    files = data / "files"
    by_files = run_script(
        "scripts/run_tfidf.py",
        ["--train_file", files / "train.csv", "--test_file", files / "test.csv", "--output_dir", "a", *common],
        tmp_path,
    )
    assert by_files.returncode == 0, by_files.stderr[-2000:]
    by_dataset = run_script(
        "scripts/run_tfidf.py", ["--dataset_name", data / "hub_dataset", "--output_dir", "b", *common], tmp_path
    )
    assert by_dataset.returncode == 0, by_dataset.stderr[-2000:]
    names = ["oof.csv", "predictions.csv", "submission.csv"]
    a, b = read_outputs(tmp_path / "a", names), read_outputs(tmp_path / "b", names)
    for name in names:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    results = [json.loads((tmp_path / d / "kfold_results.json").read_text()) for d in "ab"]
    for result in results:  # what differs by nature: the command line and the timings
        for key in ("command", "wall_time_s", "fold_wall_time_s"):
            result.pop(key)
    assert results[0] == results[1]
    assert 0 < results[0]["oof_fbeta"] <= 1


def test_fine_tune_from_a_dataset_folder_equals_the_files(data, tiny_encoder_dir, tmp_path):
    common = [
        "--model_name_or_path", tiny_encoder_dir, "--do_train", "--do_eval", "--do_predict", "--use_cpu",
        "--max_seq_length", 32, "--num_train_epochs", 1, "--per_device_train_batch_size", 16,
        "--learning_rate", 1e-3, "--seed", 3, "--report_to", "none", "--save_strategy", "no",
    ]  # fmt: skip
    files = data / "files"
    runs = {
        "a": ["--train_file", files / "train.csv", "--test_file", files / "test.csv"],
        "b": ["--dataset_name", data / "hub_dataset"],
    }
    for out, source in runs.items():
        result = cli_runner.run([*common, *source, "--output_dir", tmp_path / out], tmp_path / "logs")
        assert result.returncode == 0, result.stderr[-3000:]
    names = ["eval_predictions.csv", "predictions.csv", "submission.csv"]
    a, b = read_outputs(tmp_path / "a", names), read_outputs(tmp_path / "b", names)
    for name in names:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    results = [json.loads((tmp_path / d / "eval_results.json").read_text()) for d in "ab"]
    for key in ("eval_threshold", "eval_fbeta", "eval_recall", "eval_precision"):
        assert results[0][key] == results[1][key], key


def test_unreachable_hub_dataset_is_a_one_line_error(tmp_path):
    result = run_script(
        "scripts/run_tfidf.py", ["--dataset_name", "nobody/no-such-screening-set", "--output_dir", "out"], tmp_path
    )
    assert_one_line_error(result, "--dataset_name nobody/no-such-screening-set: could not load it")
    assert not (tmp_path / "out").exists()


def test_dataset_and_files_together_is_a_one_line_error(data, tmp_path):
    args = ["--dataset_name", data / "hub_dataset", "--train_file", data / "files" / "train.csv", "--output_dir", "o"]
    result = run_script("scripts/run_tfidf.py", args, tmp_path)
    assert_one_line_error(result, "--dataset_name reads the data: drop --train_file")


def test_missing_column_in_a_dataset_is_a_one_line_error(data, tmp_path):
    args = ["--dataset_name", data / "hub_dataset", "--label_column", "label", "--output_dir", "out"]
    result = run_script("scripts/run_tfidf.py", args, tmp_path)
    missing = "has no column 'label' (set by --label_column)"
    assert_one_line_error(result, "--dataset_name: ", "(split 'train')", missing)
    assert not (tmp_path / "out").exists()
