"""Simulated prioritised screening on a small slice of the demo data: every include found, same seed same order,
the figures of design.md, the files written; the finetune and features_lr rankers on a tiny random BERT."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse.linalg

from screening.active import stopping
from screening.active.loop import LoopArguments, batch_size, choose_batch, simulate_loop
from screening.active.rankers import RankerArguments, balanced_weights, build_ranker
from screening.active.simulate import (
    SimulationArguments,
    none_recommended,
    run_simulation,
    simulate_run,
    simulation_figures,
)
from screening.active.stopping import StoppingArguments

from .conftest import demo_review


@pytest.fixture(scope="module")
def review():
    frame = demo_review(8, 152)
    return frame, frame.judgement.astype(int).to_numpy()


def run_once(review, seed, ranker="tfidf_lr", **ranker_kwargs):
    frame, labels = review
    args = (RankerArguments(ranker=ranker, **ranker_kwargs), LoopArguments(batch_size="grow"))
    return simulate_run(frame, labels, *args, SimulationArguments("d", "o"), StoppingArguments(), seed)


def test_grow_schedule():
    assert [batch_size("grow", i) for i in range(14)] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17]
    assert batch_size("7", 5) == 7


def test_choose_batch_takes_the_top_scores_and_a_random_share():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2, 0.7])
    assert choose_batch(scores, np.array([0, 2, 3, 4, 5]), 3).tolist() == [3, 5, 2]
    drawn = choose_batch(scores, np.arange(6), 4, random_share=0.5, rng=np.random.default_rng(0))
    assert set(drawn[:2]) == {1, 3} or {1, 3} <= set(drawn)


def test_loop_until_ends_it_in_place_of_every_include_found():
    class ByRow:  # reads the rows in order, whatever the labels
        def fit_score(self, rows, labels):
            return -np.arange(20.0)

    labels = np.zeros(20, int)
    labels[[0, 3, 15]] = 1
    args = LoopArguments(batch_size="4")
    assert simulate_loop(ByRow(), labels, [0, 1], args, 0).order.tolist() == list(range(18))  # the batch of row 15
    early = simulate_loop(ByRow(), labels, [0, 1], args, 0, until=lambda rows: len(rows) >= 9)
    assert early.order.tolist() == list(range(10))  # asked after each batch of 4: before the last include
    past = simulate_loop(ByRow(), labels[:12], [0, 1], args, 0, until=lambda rows: False)  # includes: rows 0, 3
    assert past.order.tolist() == list(range(12))  # on past the last include, to the end of the records


@pytest.mark.parametrize("ranker", ["tfidf_lr", "tfidf_nb"])
def test_simulation_finds_every_include_and_is_reproducible(review, ranker):
    frame, labels = review
    first, again, other = run_once(review, 0, ranker), run_once(review, 0, ranker), run_once(review, 1, ranker)
    assert labels[first["order"]].sum() == labels.sum() == 8
    assert first["order"].tolist() == again["order"].tolist()
    assert first["order"][:2].tolist() != other["order"][:2].tolist()  # other priors
    assert len(set(first["order"].tolist())) == first["order"].size
    assert labels[first["order"][:2]].tolist() == [1, 0]  # 1 include + 1 exclude as priors
    assert first["figures"]["wss95"] > 0.2  # far better than reading at random on this easy slice


def test_simulation_figures_follow_design_definitions():
    stream = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    figures = simulation_figures(stream, 10)
    assert figures["n95"] == 6  # ceil(0.95 x 3) = 3 includes first reached at record 6
    assert figures["wss95"] == pytest.approx(4 / 10 - 0.05)
    assert figures["recall_at_10"] == pytest.approx(1 / 3)  # after ceil(0.1 x 10) = 1 record
    assert figures["atd"] == pytest.approx((1 + 3 + 6) / 3 / 10)


def test_run_simulation_writes_its_files(review, tmp_path):
    frame, labels = review
    frame = frame.assign(id=frame["id"].astype(str))
    sim_args = SimulationArguments("demo.csv", str(tmp_path), runs=2)
    ranker = RankerArguments(ranker="tfidf_lr")
    results = run_simulation(frame, labels, ranker, LoopArguments(), sim_args, StoppingArguments(), progress=False)
    order = pd.read_csv(tmp_path / "screening_order.csv")
    assert list(order.columns) == ["seed", "step", "id", "label", "score", "round"]
    assert sorted(order.seed.unique()) == [0, 1] and order.groupby("seed").label.sum().tolist() == [8, 8]
    saved = json.loads((tmp_path / "simulation_results.json").read_text())
    assert saved["aggregate"]["runs"] == 2 and set(saved["aggregate"]["rules"]) == {"0.8", "0.9", "0.95"}
    assert set(saved["aggregate"]["rules"]["0.95"]) == set(stopping.RULES) >= {"hypergeometric", "audit",
        "consecutive_excludes", "read_share", "knee", "quant", "counting_process"}  # fmt: skip
    assert saved["aggregate"]["rules"]["0.9"]["hypergeometric"]["runs"] == 2
    assert saved["aggregate"]["n95"]["mean"] == np.mean([r["figures"]["n95"] for r in results["runs"]])
    assert (tmp_path / "recall_curve.png").stat().st_size > 1000 and "| hypergeometric |" in (
        tmp_path / "summary.md").read_text()  # fmt: skip
    assert "recommended: none: a rule reaching the target in all 2 runs" in (tmp_path / "summary.md").read_text()


def test_finetune_ranker_on_a_tiny_bert(review, tiny_encoder_dir):
    frame, labels = review
    small = pd.concat([frame[labels == 1].head(4), frame[labels == 0].head(36)]).reset_index(drop=True)
    small_labels = small.judgement.astype(int).to_numpy()
    args = RankerArguments(ranker="finetune", model_name_or_path=str(tiny_encoder_dir), ranker_options="epochs=1",
                           max_seq_length=32)  # fmt: skip
    sim = SimulationArguments("d", "o", budget=12)
    run = simulate_run(small, small_labels, args, LoopArguments(batch_size="5"), sim, StoppingArguments(), 0)
    assert run["order"].size == 12 and run["rounds"].max() == 2
    assert np.isfinite(run["scores"][2:]).all() and ((run["scores"][2:] > 0) & (run["scores"][2:] < 1)).all()


def test_features_ranker_on_a_tiny_bert(review, tiny_encoder_dir, tmp_path):
    frame, labels = review
    args = dict(model_name_or_path=str(tiny_encoder_dir), max_seq_length=32, feature_cache_dir=str(tmp_path))
    run = run_once(review, 0, "features_lr", **args)
    assert labels[run["order"]].sum() == 8
    assert len(list(tmp_path.glob("*.npy"))) == 1  # embedded once, cached
    assert run_once(review, 0, "features_lr", **args)["order"].tolist() == run["order"].tolist()


def test_tfidf_features_ranker_finds_every_include(review, tiny_encoder_dir, tmp_path):
    frame, labels = review
    args = dict(model_name_or_path=str(tiny_encoder_dir), max_seq_length=32, feature_cache_dir=str(tmp_path))
    run = run_once(review, 0, "tfidf_features", **args)
    assert labels[run["order"]].sum() == 8 and run["figures"]["wss95"] > 0.2
    assert run_once(review, 0, "tfidf_features", **args)["order"].tolist() == run["order"].tolist()
    ranker = build_ranker(frame, RankerArguments(ranker_options="view.features_weight=0.3", **args))
    embedding_block = ranker.features[:, -32:].toarray()  # the tiny BERT's hidden size
    assert np.allclose(np.linalg.norm(embedding_block, axis=1), 0.3)  # unit length x --features_weight
    tfidf_block = ranker.features[:, :-32]
    assert np.allclose(scipy.sparse.linalg.norm(tfidf_block, axis=1), 1.0)  # TF-IDF rows are unit length too


def test_include_weight_scales_the_balanced_weights():
    weights = balanced_weights(np.array([1, 0, 0, 0]), include_weight=9.8)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[0] / weights[1] == pytest.approx(9.8 * 3)  # balance (3x), then 9.8x more, as ASReview's 9.8
    assert balanced_weights(np.array([1, 0, 0, 0])).tolist() == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3])


def test_too_few_runs_to_recommend_a_rule_say_how_many_would():
    assert none_recommended(10) == (
        "none: a rule reaching the target in all 10 runs has a 95% interval down to 0.69; 72 runs can show 0.95"
    )
    assert stopping.evaluate.reliability_interval(72, 72)[0] >= 0.95 > stopping.evaluate.reliability_interval(71, 71)[0]
    assert none_recommended(190).startswith("none reached the target in 95% of runs")
