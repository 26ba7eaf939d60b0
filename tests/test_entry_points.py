"""Every entry point reports a mistake alike: one line `error: ...` on stderr, exit status 2, no traceback."""

import sys

import pytest

from .cli_runner import run_command
from .conftest import DEMO_TRAIN, REPO

ENTRY_POINTS = {
    "run_classification.py": ["--output_dir", "out", "--model_name_or_path", "m", "--do_train"],
    "scripts/run_tfidf.py": ["--train_file", str(DEMO_TRAIN), "--output_dir", "out"],
    "scripts/run_features.py": ["--train_file", str(DEMO_TRAIN), "--output_dir", "out", "--model_name_or_path", "m"],
    "scripts/stack.py": ["--runs", "a", "b", "--output_dir", "out"],
    "scripts/benchmark_quality.py": ["--results_dir", "out"],
    "scripts/benchmark_speed.py": ["--output", "out/speed.md"],
    "scripts/compare_runs.py": ["a", "--output", "out/table.md"],
    "scripts/record_run_set.py": ["--output_dir", "out"],
    "run_screening.py": ["simulate", "--data_file", str(DEMO_TRAIN), "--output_dir", "out"],
    "scripts/benchmark_screening.py": ["--output", "out/screening.md"],
    "scripts/stopping_frontier.py": ["--readings_dir", "r", "--output", "out/frontier.md"],
    "scripts/stopping_learned.py": ["--readings_dir", "r", "--output", "out/learned.md"],
    "scripts/stopping_second_opinion.py": ["--readings_dir", "r", "--data_dir", "d", "--output", "out/second.md"],
}


def run(script, args, cwd):
    return run_command([sys.executable, REPO / script, *args], cwd=cwd)


def assert_one_line_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not any(line.startswith(("usage:", "error:")) for line in lines[:-1]), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[-1]


@pytest.mark.parametrize("script", sorted(ENTRY_POINTS))
def test_unknown_flag_is_a_one_line_error(script, tmp_path):
    result = run(script, [*ENTRY_POINTS[script], "--no_such_flag", "3"], tmp_path)
    assert_one_line_error(result, "unknown arguments: --no_such_flag 3")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["run_classification.py", "scripts/run_tfidf.py", "scripts/run_features.py"])
def test_missing_column_is_a_one_line_error(script, tiny_encoder_dir, tmp_path):
    args = [*ENTRY_POINTS[script], "--label_column", "label"]
    if script == "run_classification.py":
        args = ["--output_dir", "out", "--model_name_or_path", str(tiny_encoder_dir), "--do_train", "--train_file",
                str(DEMO_TRAIN), "--label_column", "label", "--use_cpu"]  # fmt: skip
    result = run(script, args, tmp_path)
    assert_one_line_error(result, "no column 'label' (set by --label_column)")
    assert not (tmp_path / "out").exists()


def test_stack_names_the_missing_oof_column(tmp_path):
    for run_dir in ("a", "b"):
        (tmp_path / run_dir).mkdir()
        (tmp_path / run_dir / "oof.csv").write_text("id,fold,probability\n1,0,0.5\n")
    result = run("scripts/stack.py", ENTRY_POINTS["scripts/stack.py"], tmp_path)
    assert_one_line_error(result, "a/oof.csv has no column label")
    assert not (tmp_path / "out").exists()
