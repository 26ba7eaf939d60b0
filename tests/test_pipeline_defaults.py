"""The classic members' defaults (chosen on five fold seeds, benchmarks/quality_notes.md): what --help says, what the
pipelines build, and what scripts/benchmark_quality.py runs."""

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.preprocessing import Normalizer, StandardScaler

from screening.cli import parse_args
from screening.kfold import CrossValidationArguments
from screening.pipelines.features import FeatureArguments, make_classifier
from screening.pipelines.tfidf import TfidfArguments, make_tfidf_model

from .conftest import REPO, write_demo_train

sys.path.insert(0, str(REPO / "scripts"))
import benchmark_quality  # noqa: E402
import benchmark_screening  # noqa: E402

DEFAULTS = {  # script -> flag -> the default its --help must state
    "scripts/run_tfidf.py": {"nb_alpha": "1.0", "C": "10.0"},
    "scripts/run_features.py": {"feature_scaling": "l2", "C": "1.0", "fold_normalization": "none"},
    "run_screening.py simulate": {"ranker": "tfidf_features", "batch_size": "1%"},  # hyperparameters: test_rankers
}


@pytest.mark.parametrize("script", sorted(DEFAULTS))
def test_help_states_the_defaults(script):
    env = dict(os.environ, COLUMNS="1000")
    text = subprocess.run(
        [sys.executable, str(REPO / script.split()[0]), *script.split()[1:], "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    blocks = [" ".join(block.split()) for block in text.split("\n  --")]  # one block per flag
    for flag, default in DEFAULTS[script].items():
        block = next(b for b in blocks if b.startswith(f"{flag} "))
        assert re.search(rf"\(default: {re.escape(default)}\)$", block), block


def test_nb_default_is_complement_nb_with_alpha_one():
    _, model = make_tfidf_model(TfidfArguments(classifier="nb"))
    assert isinstance(model, ComplementNB) and model.alpha == 1.0


def test_features_default_is_unit_length_then_plain_balanced_lr():
    labels = np.r_[np.ones(10), np.zeros(90)].astype(int)
    x = np.random.default_rng(0).normal(size=(100, 8)) * 5 + labels[:, None]
    model = make_classifier(FeatureArguments(model_name_or_path="m"), labels).fit(x, labels)
    scaler, lr = model[0], model[-1]
    assert isinstance(scaler, Normalizer) and isinstance(lr, LogisticRegression)
    assert lr.C == 1.0 and lr.class_weight == "balanced"
    np.testing.assert_allclose(np.linalg.norm(scaler.transform(x), axis=1), 1.0, rtol=1e-6)
    standard = FeatureArguments(model_name_or_path="m", feature_scaling="standard")
    assert isinstance(make_classifier(standard, labels)[0], StandardScaler)


def captured_argv(monkeypatch, module, call):
    """The argv a benchmark stage hands to `module.main` (which is not run)."""
    seen = []
    monkeypatch.setattr(module, "main", lambda argv: seen.append(argv))
    call()
    return seen


def test_quality_benchmark_runs_the_defaults(monkeypatch, tmp_path):
    from screening.pipelines import features, tfidf
    from screening.pipelines.sklearn import RunArguments, SklearnCrossValidationArguments

    args = benchmark_quality.parse_args(["--results_dir", str(tmp_path)])
    write_demo_train(tmp_path, positives=6, negatives=14)  # 5 folds: the stages read its include count
    data = tmp_path / "train.csv"
    runs = captured_argv(monkeypatch, tfidf, lambda: benchmark_quality.stage_tfidf(args, "r", data))
    nb = next(argv for argv in runs if "nb" in argv)
    _, tfidf_args, *_ = parse_args((RunArguments, TfidfArguments, SklearnCrossValidationArguments), nb)
    assert tfidf_args.nb_alpha == TfidfArguments.nb_alpha == 1.0

    (argv,) = captured_argv(monkeypatch, features, lambda: benchmark_quality.stage_features(args, "r", data))
    parsed = parse_args((RunArguments, FeatureArguments, SklearnCrossValidationArguments), argv)
    _, feature_args, cv_args = parsed
    assert (feature_args.feature_scaling, feature_args.C, feature_args.pooling) == ("l2", "1.0", "mean")
    assert feature_args.max_seq_length == 256 and cv_args.fold_normalization == "none"
    assert CrossValidationArguments.fold_normalization == "none"


def test_screening_benchmark_runs_the_defaults_of_simulate():
    from screening.active.loop import LoopArguments
    from screening.active.rankers import RankerArguments

    args = benchmark_screening.parse([])
    ranker_args, loop_args = benchmark_screening.ranker_setup("default", args)
    assert (ranker_args.ranker, ranker_args.ranker_options, ranker_args.embedding_precision) == (
        RankerArguments.ranker,
        None,
        "auto",
    )
    assert loop_args == LoopArguments()
    fp32, _ = benchmark_screening.ranker_setup("default_fp32", args)
    assert fp32.embedding_precision == "fp32" and fp32.ranker == RankerArguments.ranker
    named, schedule = benchmark_screening.ranker_setup("tfidf_svm@1%", args)
    assert (named.ranker, schedule.batch_size) == ("tfidf_svm", "1%")
    assert benchmark_screening.ranker_setup("tfidf_lr", args)[1].batch_size == args.batch_size == "grow"
    assert benchmark_screening.file_label("tfidf_svm@1%") == "tfidf_svm_at_1pct"
    assert len(benchmark_screening.REVIEWS) == 19 and set(benchmark_screening.SIX).isdisjoint(benchmark_screening.CLEF)


def test_screening_benchmark_readings_give_the_same_rules(tmp_path):
    """A kept reading (float32 scores) measures the stopping rules as the run did."""
    from screening.active.loop import LoopArguments
    from screening.active.rankers import RankerArguments, build_ranker
    from screening.active.simulate import SimulationArguments, simulate_run
    from screening.active.stopping import StoppingArguments, evaluate

    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "kappa", "omega"]
    labels = (np.arange(120) % 10 == 0).astype(int)
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(120)],
            "title": [("trial " if y else "") + " ".join(rng.choice(words, 4)) for y in labels],
            "abstract": [" ".join(rng.choice(words, 8)) for _ in labels],
        }
    )
    ranker_args, loop_args = RankerArguments(ranker="tfidf_svm"), LoopArguments()
    run = simulate_run(
        frame, labels, ranker_args, loop_args, SimulationArguments("d", "o"), StoppingArguments(), 3,
        build_ranker(frame, ranker_args),
    )  # fmt: skip
    path = tmp_path / "r.npz"
    benchmark_screening.save_reading(path, run["reading"])
    again = evaluate.rule_outcomes(benchmark_screening.load_reading(path), StoppingArguments(), (0.8, 0.9, 0.95), 3)
    assert again.keys() == run["rules"].keys()
    for target, rules in run["rules"].items():
        assert {r: o["stop"] for r, o in again[target].items()} == {r: o["stop"] for r, o in rules.items()}


def test_members_equal_their_plain_recipes(tmp_path, tiny_encoder_dir):
    """The benchmark's plain recipes (scikit-learn alone, the members' references), fitted on a member run's folds,
    score exactly what `tfidf_nb` and the MiniLM-features member score: the members are those recipes."""
    from screening.metrics import honest_oof_fbeta
    from screening.outputs import read_oof

    write_demo_train(tmp_path, positives=12, negatives=88)
    args = benchmark_quality.parse_args(["--results_dir", str(tmp_path / "runs")])
    args.model_name_or_path = str(tiny_encoder_dir)
    data = tmp_path / "train.csv"
    benchmark_quality.stage_tfidf(args, "r", data, pipelines=("tfidf_nb",))
    benchmark_quality.stage_features(args, "r", data)
    benchmark_quality.stage_plain(args, "r", data)
    for member, plain in benchmark_quality.PLAIN_RECIPES.items():
        ours = read_oof(benchmark_quality.run_dir(args, "r", member))
        theirs = read_oof(benchmark_quality.run_dir(args, "r", plain))
        assert list(ours["id"]) == list(theirs["id"]) and list(ours["fold"]) == list(theirs["fold"])
        np.testing.assert_allclose(ours["probability"], theirs["probability"], rtol=1e-6, atol=1e-9)
        honest = honest_oof_fbeta(ours["label"], ours["probability"], ours["fold"], 7.0)[0]
        assert honest == honest_oof_fbeta(theirs["label"], theirs["probability"], theirs["fold"], 7.0)[0]


def test_quality_run_info_names_its_code_and_machine(tmp_path):
    """Every finished benchmark run's benchmark.json names its wall time, command, date, commit and machine, and the
    table's command list shows them (kept runs are read at later commits and on other machines)."""
    import json

    benchmark_quality.timed(tmp_path / "run", lambda: None, "python scripts/run_tfidf.py --x 1")
    info = json.loads((tmp_path / "run" / "benchmark.json").read_text())
    assert set(info) == {"wall_time_s", "command", "date", "commit", "machine"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", info["date"]) and info["commit"] and "cores" in info["machine"]
    assert benchmark_quality.ran(info) == f" (ran {info['date']}, {info['commit']}, {info['machine']})"
    assert benchmark_quality.ran({"wall_time_s": 1.0, "command": "c"}) == ""
    assert benchmark_quality.parse_args([]).results_dir == "benchmarks/quality_runs"  # kept in git by its .gitignore


@pytest.mark.parametrize(
    "path, kept",
    [
        ("R/minilm_finetune/oof.csv", True),
        ("R/minilm_frozen5_finetune/kfold_results.json", True),
        ("R/minilm_finetune/benchmark.json", True),
        ("R/minilm_finetune/fold_3/eval_predictions.csv", True),
        ("R/minilm_finetune/fold_3/fold_results.json", True),
        ("R/minilm_finetune/fold_3/model.safetensors", False),
        ("R/minilm_finetune/fold_3/checkpoint-20/optimizer.pt", False),
        ("R/minilm_finetune/train.log", False),
        ("R/tfidf_lr/oof.csv", False),
        ("seed_472/R/minilm_features_lr/oof.csv", False),
        ("feature_cache/abc/embeddings.npy", False),
    ],
)
def test_quality_runs_keep_only_the_fine_tunes_results(path, kept):
    """The benchmark's default --results_dir keeps in git what the table and a fold resume need from the
    fine-tunes (hours of CPU), and nothing heavy or quick to rerun."""
    default = benchmark_quality.parse_args([]).results_dir
    assert default == "benchmarks/quality_runs" and (REPO / default / ".gitignore").is_file()
    check = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", f"{default}/{path}"])
    assert check.returncode == (1 if kept else 0), (path, check.returncode)


def test_finetune_stage_wall_time_is_its_folds_across_a_resume(tmp_path, tiny_encoder_dir, monkeypatch):
    """A kept fine-tune stopped after a fold resumes at the next one, and its benchmark.json wall time is the sum of
    its folds' own times, not the resumed process's."""
    import json

    write_demo_train(tmp_path, positives=6, negatives=14)
    (tmp_path / "train.csv").rename(tmp_path / "r.csv")
    flags = "--do_train --num_folds 2 --fold_seed 471 --max_seq_length 32 --num_train_epochs 1 --use_cpu "
    flags += "--per_device_train_batch_size 8 --eval_strategy no --save_strategy no --report_to none"
    argv = ["--results_dir", str(tmp_path / "runs"), "--data_dir", str(tmp_path), "--finetune_flags", flags]
    args = benchmark_quality.parse_args(argv)
    args.model_name_or_path = str(tiny_encoder_dir)
    monkeypatch.chdir(REPO)  # the stage runs run_classification.py from the repo root, as main() does
    benchmark_quality.stage_finetune(args, ["r"])
    out = benchmark_quality.run_dir(args, "r", "minilm_finetune")
    for name in ("kfold_results.json", "benchmark.json", "oof.csv", "fold_1/fold_results.json"):
        (out / name).unlink()  # as if stopped during fold 1
    (out / "fold_0" / "fold_results.json").write_text(json.dumps({"wall_time_s": 1000.0}))  # fold 0 took 1000 s
    benchmark_quality.stage_finetune(args, ["r"])
    info = json.loads((out / "benchmark.json").read_text())
    fold_1 = json.loads((out / "fold_1" / "fold_results.json").read_text())["wall_time_s"]
    assert info["wall_time_s"] == round(1000.0 + fold_1, 1) and fold_1 < 1000
    assert "--num_folds 2" in info["command"] and info["commit"]
