"""scripts/compare_runs.py: one pipeline's runs from several benchmark folders, side by side."""

import json
import sys
from pathlib import Path

from .cli_runner import run_command

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"


def write_run(root, review, f7, auc, wall):
    run = root / review / "minilm_finetune"
    run.mkdir(parents=True)
    results = {"honest_oof_fbeta": f7, "oof_roc_auc": auc, "mean_fold_roc_auc": auc + 0.01}
    (run / "kfold_results.json").write_text(json.dumps(results))
    (run / "benchmark.json").write_text(json.dumps({"wall_time_s": wall}))


def compare(*argv):
    return run_command([sys.executable, SCRIPT, *argv])


def test_table_means_and_differences(tmp_path):
    base, other = tmp_path / "base", tmp_path / "other"
    write_run(base, "A", 0.80, 0.90, 100)
    write_run(base, "B", 0.60, 0.80, 300)
    write_run(base, "C", 0.70, 0.85, 200)  # not finished in `other`: left out of the table
    write_run(other, "A", 0.85, 0.91, 50)
    write_run(other, "B", 0.58, 0.82, 150)
    out = tmp_path / "cmp.md"
    result = compare(base, other, "--labels", "default", "new", "--output", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "| A | 0.800 | 0.850 | 0.900 | 0.910 | 0.910 | 0.920 | 100 | 50 |" in text
    assert "| **mean** | 0.700 | 0.715 | 0.850 | 0.865 | 0.860 | 0.875 | 200 | 100 |" in text
    assert "| C |" not in text
    assert "- new vs default: honest OOF F7 +0.015 on average, higher on 1 of 2 reviews; mean wall time 0.50x." in text


def test_errors_name_the_problem(tmp_path):
    write_run(tmp_path / "base", "A", 0.8, 0.9, 1)
    result = compare(tmp_path / "base", tmp_path / "missing")
    assert result.returncode == 1 and "no review has a finished 'minilm_finetune' run" in result.stderr
    result = compare(tmp_path / "base", tmp_path / "base", "--labels", "one")
    assert result.returncode == 2 and "--labels: 1 names for 2 folders" in result.stderr
