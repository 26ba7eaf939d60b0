"""Every file of a run folder has one writer (screening/outputs.py). The CSV columns of a single run and of a
K-fold run are pinned in test_run_classification.py and test_kfold_run.py, on their runs."""

import ast
import re

import pandas as pd

from screening import outputs

from .conftest import REPO

RUN_FILE = re.compile(r"^(eval_predictions|predictions|submission|oof)\.csv$|^\w+_results\.json$")


def test_run_file_names_are_written_only_in_outputs():
    """No module but screening/outputs.py names a run-folder file (so no other module can write one)."""
    sources = [*sorted((REPO / "screening").rglob("*.py")), REPO / "run_classification.py"]
    named = {}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RUN_FILE.match(node.value):
                named.setdefault(node.value, set()).add(path.relative_to(REPO).as_posix())
    assert named and all(where == {"screening/outputs.py"} for where in named.values()), named


def test_predictions_writer_without_threshold_writes_no_submission(tmp_path):
    outputs.write_predictions(tmp_path, ["a", "b"], [0.2, 0.7])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]
    outputs.write_predictions(tmp_path, ["a", "b"], [0.2, 0.7], threshold=0.7)
    assert pd.read_csv(tmp_path / "predictions.csv")["prediction"].tolist() == [0, 1]  # p >= t
    assert (tmp_path / "submission.csv").read_text() == "a,0\nb,1\n"
