"""scripts/benchmark_quality.py on the 19 reviews: the few-includes folds, and each group's mean shown apart (the six,
the CLEF 2017 topics, all)."""

import sys

import numpy as np
import pandas as pd

from screening.metrics import honest_oof_fbeta
from screening.outputs import read_oof, write_csv

from .conftest import REPO, write_demo_train

sys.path.insert(0, str(REPO / "scripts"))
import benchmark_quality  # noqa: E402

SIX, CLEF = benchmark_quality.REVIEWS, benchmark_quality.CLEF_REVIEWS


def test_a_review_with_fewer_includes_than_five_gets_one_fold_per_include(tmp_path):
    write_demo_train(tmp_path, positives=2, negatives=38)
    assert benchmark_quality.num_folds(tmp_path / "train.csv") == 2
    write_demo_train(tmp_path, positives=9, negatives=31)
    assert benchmark_quality.num_folds(tmp_path / "train.csv") == benchmark_quality.FOLDS == 5


def test_tfidf_stage_runs_a_two_include_review_on_two_folds(tmp_path):
    """A review with 2 includes (as CLEF2017_CD010386) runs, each fold with one include, instead of stopping the
    benchmark with run_tfidf.py's input error."""
    write_demo_train(tmp_path, positives=2, negatives=38)
    args = benchmark_quality.parse_args(["--results_dir", str(tmp_path / "runs")])
    benchmark_quality.stage_tfidf(args, "r", tmp_path / "train.csv", pipelines=("tfidf_lr",))
    oof = read_oof(benchmark_quality.run_dir(args, "r", "tfidf_lr"))
    assert oof["fold"].nunique() == 2 and oof.groupby("fold")["label"].sum().tolist() == [1, 1]


def test_review_groups_keep_the_six_and_the_clef_topics_apart():
    groups = benchmark_quality.review_groups([*SIX, *CLEF])
    assert [name for name, _ in groups] == ["six", "CLEF 2017 (13)", "all 19"]
    assert [len(members) for _, members in groups] == [6, 13, 19]
    assert benchmark_quality.review_groups(list(SIX[:2])) == [("2 of the six", list(SIX[:2]))]
    assert benchmark_quality.review_file("/d", CLEF[0]).as_posix() == f"/d/clef2017/{CLEF[0]}.csv"
    assert not benchmark_quality.run_on(CLEF[0], "minilm_finetune") and benchmark_quality.run_on(SIX[0], "stack_lr")
    assert benchmark_quality.run_on(CLEF[0], "cpu_stack_rank")


def write_oof(out, labels, scores, folds):
    frame = pd.DataFrame({"id": [str(i) for i in range(len(labels))], "fold": folds, "label": labels})
    write_csv(out / "oof.csv", frame.assign(probability=scores))


def test_seed_table_shows_each_groups_mean_over_the_seeds(tmp_path):
    """Two of the six and two CLEF topics (one with a fold holding no include), two pipelines, five seeds: each
    group's row is the mean over seeds of its reviews' mean honest F7, with the sample s.d. over seeds."""
    args = benchmark_quality.parse_args(["--results_dir", str(tmp_path)])
    reviews = [SIX[0], SIX[1], CLEF[0], CLEF[1]]
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(4), np.zeros(36)].astype(int)
    honest = {}
    for seed in benchmark_quality.FOLD_SEEDS:
        for review in reviews:
            for pipeline in ("tfidf_lr", "tfidf_nb"):
                folds = np.tile(np.arange(5), 8)  # fold 4 holds no include: honest F7 still pooled over the folds
                scores = labels * 0.3 + rng.random(40)
                write_oof(benchmark_quality.run_dir(args, review, pipeline, seed), labels, scores, folds)
                honest[seed, review, pipeline] = honest_oof_fbeta(labels, scores, folds, 7.0)[0]
    lines = benchmark_quality.seed_section(args, reviews)
    row = next(line for line in lines if line.startswith("| tfidf_nb | 5 |")).split(" | ")
    for group, cell in ((reviews[:2], 2), (reviews[2:], 4), (reviews, 6)):
        means = [np.mean([honest[s, r, "tfidf_nb"] for r in group]) for s in benchmark_quality.FOLD_SEEDS]
        assert row[cell] == f"**{np.mean(means):.3f} ± {np.std(means, ddof=1):.3f}**"
        gaps = [
            m - np.mean([honest[s, r, "tfidf_lr"] for r in group]) for s, m in zip(benchmark_quality.FOLD_SEEDS, means)
        ]
        assert row[cell + 1] == f"{np.mean(gaps):+.3f} ± {np.std(gaps, ddof=1):.3f}"
    assert any(line.startswith("| **mean, CLEF 2017 (2)** |") for line in lines)
    assert any(line.startswith(f"| {CLEF[0]} | 4 | 5 |") for line in lines)
