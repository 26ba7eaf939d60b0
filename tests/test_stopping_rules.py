"""Every stopping rule on reading orders whose answer is known by hand (all includes first; includes spread
uniformly; 2 includes in 600 records), the registry, and the evaluation figures."""

import math

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import binom, hypergeom

from screening.active import stopping
from screening.active.loop import batch_size
from screening.active.stopping import evaluate
from screening.active.stopping.base import checkpoints
from screening.active.stopping.calibration import platt
from screening.active.stopping.hypergeometric import hypergeom_cdf
from screening.active.stopping.sample import qbcb_cutoff, smallest_sample_includes

ARGS = stopping.StoppingArguments()


def reading(labels, perfect_scores=True, seed=0):
    """A SimulatedReading of `labels` in reading order, retrained on the grow schedule with scores that know the
    labels (1 for includes, 0 for excludes, a little noise) or carry none (uniform noise)."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.arange(labels.size)
    noise = np.random.default_rng(seed).uniform(0, 1e-4, labels.size)
    scores = labels * 0.98 + noise if perfect_scores else np.random.default_rng(seed).uniform(0, 1, labels.size)
    retrains, point, r = [], 2, 0
    while point < labels.size:
        retrains.append((point, scores))
        point += batch_size("grow", r)
        r += 1
    return evaluate.SimulatedReading(labels, order, retrains)


ALL_FIRST = np.r_[np.ones(100, int), np.zeros(1900, int)]
UNIFORM = (np.arange(2000) % 20 == 7).astype(int)  # 100 includes, one every 20 records
FEW = np.zeros(600, int)
FEW[[3, 250]] = 1  # 2 includes in 600 records


def test_registry_holds_every_published_rule_with_its_guarantee():
    assert list(stopping.RULES)[:3] == ["hypergeometric", "audit", "qbcb"]
    assert set(stopping.RULES) == {"hypergeometric", "audit", "qbcb", "counting_process", "counting_process_classifier",
                                   "counting_process_agree", "counting_process_steady", "quant", "quant_ci", "knee",
                                   "consecutive_excludes",
                                   "read_share"}  # fmt: skip
    certified = {n for n, r in stopping.RULES.items() if r.guarantee == "certified"}
    assert certified == {"hypergeometric", "audit", "qbcb"}
    rules = stopping.build_rules(ARGS, 0.9)
    assert all(rule.target_recall == 0.9 and rule.assumption for rule in rules.values())
    assert "qbcb" not in stopping.build_rules(ARGS, review=True)  # its sample must be drawn before ranked reading


def test_a_new_rule_is_one_class():
    @stopping.register
    class EveryHundred(stopping.StoppingRule):
        name = "every_hundred"
        assumption = "nothing"

        def decide(self, state):
            return stopping.Decision(state.read >= 100)

    try:
        stream = evaluate.SimulatedReading(UNIFORM, np.arange(UNIFORM.size))  # no retrains: asked after every record
        point = stopping.build_rules(ARGS, names=["every_hundred"])["every_hundred"].first_stop(stream)
        assert point.position == 100
    finally:
        del stopping.RULES["every_hundred"]


@pytest.mark.parametrize("name", ["hypergeometric", "counting_process", "counting_process_classifier", "quant",
                                  "quant_ci", "knee", "consecutive_excludes", "counting_process_agree",
                                  "counting_process_steady"])  # fmt: skip
def test_all_includes_first_then_a_long_tail_stops_with_recall_near_one(name):
    rule = stopping.build_rules(ARGS, 0.95, [name])[name]
    point = rule.first_stop(reading(ALL_FIRST))
    assert point is not None and point.found >= 95 and point.position < 1000
    if rule.guarantee != "none":
        assert point.decision.recall_estimate >= 0.95


@pytest.mark.parametrize("name", ["hypergeometric", "knee", "counting_process", "counting_process_agree",
                                  "counting_process_steady"])  # fmt: skip
def test_includes_spread_uniformly_never_stop_early(name):
    rule = stopping.build_rules(ARGS, 0.95, [name])[name]
    point = rule.first_stop(reading(UNIFORM, perfect_scores=False))
    assert point is None or point.found >= 0.95 * 100


def test_steady_counting_process_waits_for_its_verdict_to_hold():
    """All includes first: the counting process's verdict, once stop, stays stop, so the steady rule stops exactly
    ceil(0.05 x N) - 1 records later. An include read just after the counting process's first stop breaks the
    streak: the steady rule reads on past it."""
    stream = evaluate.SimulatedReading(ALL_FIRST, np.arange(ALL_FIRST.size))  # asked after every record
    plain = stopping.RULES["counting_process"](0.95, 0.95, rate="exponential").first_stop(stream)
    steady = stopping.RULES["counting_process_steady"](0.95, 0.95)
    assert steady.window == 0.05 and steady.rate == "exponential"
    point = steady.first_stop(stream)
    assert point.position == plain.position + 100 - 1  # ceil(0.05 x 2000) = 100 stops in a row
    assert point.decision.detail["stop_streak"] == 100 == point.decision.detail["streak_needed"]
    late = ALL_FIRST.copy()
    late[plain.position + 4] = 1  # read 5 records after the plain rule stopped
    again = steady.first_stop(evaluate.SimulatedReading(late, np.arange(late.size)))
    assert again.position > plain.position + 5 and again.found == 101
    assert not steady.decide(stopping.ReadingState(late[: plain.position + 5], 2000)).stop
    cluster = np.zeros(100, int)
    cluster[[0, 1, 2, 3, 4, 95, 96, 97, 98]] = 1  # the last records held includes: its counting process said go on
    assert not steady.decide(stopping.ReadingState(cluster[:99], 100)).stop
    read_all = steady.decide(stopping.ReadingState(cluster, 100))
    assert read_all.stop and read_all.detail["stop_streak"] < read_all.detail["streak_needed"]  # nothing is left


def test_knee_slope_ratio_by_hand():
    rule = stopping.build_rules(ARGS, names=["knee"])["knee"]
    # 100 includes first: knee at 100, ratio (100/100) / ((0 + 1)/(s - 100)) = s - 100; needed 6 + 150 - 100 = 56
    assert not rule.decide(stopping.ReadingState(ALL_FIRST[:155], 2000)).stop
    decision = rule.decide(stopping.ReadingState(ALL_FIRST[:156], 2000))
    assert decision.stop and decision.detail["slope_ratio"] == pytest.approx(56)


@pytest.mark.parametrize("name", list(stopping.RULES))
def test_two_includes_in_600_records_give_an_answer(name):
    rule = stopping.build_rules(ARGS, 0.95, [name])[name]
    run = reading(FEW)
    for n in (0, 2, 4, 100, 300, 599, 600):
        decision = rule.decide(run.state(n))
        assert isinstance(decision.stop, bool)
        assert decision.recall_estimate is None or 0 <= decision.recall_estimate <= 1
    point = rule.first_stop(run, seed=0)
    outcome = evaluate.outcome(point, run, 0.95, rule.guarantee)
    assert 0 < outcome["stop"] <= 600 and outcome["recall"] in (0.5, 1.0)


def test_two_includes_hypergeometric_says_how_far_it_is():
    state = stopping.ReadingState(FEW[:300], 600)
    entry = stopping.build_rules(ARGS, names=["hypergeometric"])["hypergeometric"].entry(state)
    k = entry["excludes_to_stop"]  # 2 found: one hidden include must be ruled out, nearly every record read
    assert entry["stop"] is False and entry["guarantee"] == "certified" and 250 < k < 300
    assert stopping.hypergeometric_p(np.r_[FEW[:300], np.zeros(k, int)], 600) < 0.05
    assert stopping.hypergeometric_p(np.r_[FEW[:300], np.zeros(k - 1, int)], 600) >= 0.05
    none_found = stopping.ReadingState(np.zeros(50, int), 600)
    assert stopping.excludes_to_certify(none_found.labels, 600) is None


def test_excludes_to_certify_is_the_first_k_that_stops():
    labels = np.r_[np.ones(30, int), np.zeros(10, int), [1], np.zeros(20, int)]
    k = stopping.excludes_to_certify(labels, 1500, 0.9, 0.95)
    p = [stopping.hypergeometric_p(np.r_[labels, np.zeros(j, int)], 1500, 0.9) for j in (k - 1, k)]
    assert p[0] >= 0.05 > p[1]
    assert stopping.excludes_to_certify(np.r_[labels, np.zeros(k, int)], 1500, 0.9, 0.95) == 0


def test_fast_hypergeometric_cdf_matches_scipy():
    rng = np.random.default_rng(0)
    population = rng.integers(50, 3000, 400)
    successes = (population * rng.uniform(0, 0.5, 400)).astype(int)
    draws = (population * rng.uniform(0, 1, 400)).astype(int)
    k = rng.integers(0, 40, 400)
    np.testing.assert_allclose(hypergeom_cdf(k, population, successes, draws),
                               hypergeom.cdf(k, population, successes, draws), rtol=1e-9, atol=1e-12)  # fmt: skip


def test_a_rule_that_says_stop_for_a_moment_stops_there():
    """A review asks the rules after each batch and stops at the first yes: so does the simulation, even where the
    rule would say go on again later (a counting process's fit can)."""
    run = reading(UNIFORM)
    moment = run.retrain_points[20]

    class Moment(stopping.StoppingRule):
        name = "moment"

        def decide(self, state):
            return stopping.Decision(state.read == moment)

    assert Moment().first_stop(run).position == moment
    assert Moment().first_stop(evaluate.SimulatedReading(UNIFORM, np.arange(2000))).position == moment
    assert checkpoints(run, needs_scores=False) == checkpoints(run)  # labels-only rules are asked as often


def test_qbcb_cutoff_by_hand():
    assert smallest_sample_includes(0.95, 0.95) == 59  # 1 - 0.95**59 >= 0.95 > 1 - 0.95**58
    assert qbcb_cutoff(59, 0.95, 0.95) == 59  # the target method: every sample include
    j = qbcb_cutoff(150, 0.9, 0.95)
    assert binom.cdf(j - 1, 150, 0.9) >= 0.95 > binom.cdf(j - 2, 150, 0.9)


def test_qbcb_counts_its_sample_as_read():
    rule = stopping.build_rules(ARGS, 0.8, ["qbcb"])["qbcb"]  # r = 14 sample includes at 0.8/0.95
    point = rule.first_stop(reading(UNIFORM), seed=3)
    assert point.read > point.position and point.found >= 80


def test_quant_estimate_by_hand():
    labels = np.r_[np.ones(8, int), np.zeros(12, int)]
    read_scores, unread_scores = np.r_[np.full(8, 0.9), np.full(12, 0.1)], np.full(20, 0.1)
    state = stopping.ReadingState(labels, 40, unread_scores=unread_scores, read_scores=read_scores)
    decision = stopping.build_rules(ARGS, 0.5, ["quant"])["quant"].decide(state)
    a, b = platt(read_scores, labels)  # scores are Platt-scaled on the records read
    known, left = expit(a * read_scores + b).sum(), expit(a * unread_scores + b).sum()
    assert left == pytest.approx(20 * expit(a * 0.1 + b))
    assert decision.recall_estimate == pytest.approx(known / (known + left))


def test_platt_scaling_fits_the_labels_read():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=4000)
    labels = (rng.random(4000) < expit(2 * scores - 1)).astype(int)
    a, b = platt(scores, labels)
    assert a == pytest.approx(2, abs=0.2) and b == pytest.approx(-1, abs=0.15)


def test_outcome_and_aggregate_figures():
    run = reading(ALL_FIRST)
    stop = stopping.StopPoint(300, 300, 100, stopping.Decision(True, 0.99, (0.9, 1.0)))
    o = evaluate.outcome(stop, run, 0.9, "estimate")
    assert o["overshoot"] == pytest.approx((300 - 90) / 2000)  # n_target: 90 = ceil(0.9 x 100) includes at record 90
    assert o["read_share"] == 0.15 and o["interval"] == [0.9, 1.0]
    never = evaluate.outcome(None, run, 0.9, "none")
    assert never["stop"] == 2000 and not never["stopped"] and never["recall"] == 1.0
    runs = [{"0.9": {"a": o, "b": never}}, {"0.9": {"a": {**o, "recall": 0.5, "reached_target": False}, "b": never}}]
    table = evaluate.aggregate_outcomes(runs)
    assert table["0.9"]["a"]["reliability"] == 0.5 and table["0.9"]["a"]["recall_min"] == 0.5
    assert table["0.9"]["b"]["reliability_interval"] == pytest.approx([0.158, 1.0], abs=1e-3)  # exact, 2 of 2
    assert evaluate.recommend(table, 0.9, sure=False) == "b"
    assert evaluate.recommend(table, 0.9) is None  # 2 of 2 runs: the interval reaches down to 0.158


def test_recommendation_wants_the_reliability_interval_above_the_bar():
    """181 of 190 runs (0.953) is over 0.95 but its interval reaches 0.912; 189 of 190 clears it (0.971), so the
    rule that reads a little more but is surely reliable is chosen."""

    def figures(reached, overshoot):
        return {"runs": 190, "reliability": reached / 190, "overshoot": overshoot,
                "reliability_interval": evaluate.reliability_interval(reached, 190)}  # fmt: skip

    table = {"0.8": {"counting_process@0.9": figures(181, 0.134), "counting_process_steady": figures(189, 0.140)}}
    assert evaluate.recommend(table, 0.8) == "counting_process_steady"
    assert evaluate.recommend(table, 0.8, sure=False) == "counting_process@0.9"
    assert evaluate.reliability_interval(181, 190)[0] == pytest.approx(0.912, abs=1e-3)


def test_a_rule_run_at_a_stricter_target_counts_at_the_lower_one():
    run = reading(ALL_FIRST)  # n_target: 80 at 0.8, 90 at 0.9, 95 at 0.95
    short = stopping.StopPoint(85, 85, 85, stopping.Decision(True))  # stops at recall 0.85
    long = stopping.StopPoint(120, 120, 100, stopping.Decision(True))  # stops at recall 1.0
    outcomes = {
        "0.9": {"x": evaluate.outcome(short, run, 0.9, "estimate")},
        "0.95": {"x": evaluate.outcome(long, run, 0.95, "estimate")},
    }
    table = evaluate.aggregate_outcomes([outcomes])
    assert set(table["0.9"]) == {"x", "x@0.95"} and set(table["0.95"]) == {"x"}
    assert table["0.9"]["x"]["reliability"] == 0.0
    assert table["0.9"]["x@0.95"]["reliability"] == 1.0
    assert table["0.9"]["x@0.95"]["overshoot"] == pytest.approx((120 - 90) / 2000)  # from 0.9's oracle stop
    assert evaluate.recommend(table, 0.9, sure=False) == "x@0.95"
    assert evaluate.split_name("x@0.95") == ("x", 0.95) and evaluate.split_name("x") == ("x", None)


def test_recommended_rule_below_a_measured_target_runs_at_it():
    figures = {"reliability": 0.99, "runs": 190, "overshoot": 0.2}
    table = {"recommended": {"0.9": "counting_process@0.95", "0.95": "counting_process"},
             "rules": {"0.9": {"counting_process@0.95": figures}, "0.95": {"counting_process": figures}}}  # fmt: skip
    assert evaluate.recommended_rule(0.9, table) == ("counting_process@0.95", figures)
    assert evaluate.recommended_rule(0.95, table) == ("counting_process", figures)
    assert evaluate.recommended_rule(0.92, table) == ("counting_process@0.95", figures)
    assert evaluate.recommended_rule(0.99, table) == ("hypergeometric", None)


def test_a_review_reports_the_recommended_rule_at_its_stricter_target(monkeypatch):
    from screening.active.review import verdicts

    table = {"recommended": {"0.9": "counting_process@0.95"}, "rules": {"0.9": {}}}
    monkeypatch.setattr(evaluate, "reliability_table", lambda: table)
    labels = ALL_FIRST[:400]
    verdict = verdicts(labels, 2000, stopping.StoppingArguments(target_recall=0.9), None)
    assert verdict["recommended"] == "counting_process@0.95"
    state = stopping.ReadingState(labels, 2000)
    at_95 = stopping.build_rules(ARGS, 0.95, ["counting_process"])["counting_process"].decide(state)
    assert verdict["rules"]["counting_process@0.95"]["recall_estimate"] == pytest.approx(at_95.recall_estimate)
    assert verdict["rules"]["counting_process@0.95"]["stop"] == at_95.stop


def test_rule_outcomes_at_three_targets_in_seconds():
    rng = np.random.default_rng(1)
    labels = (rng.random(4751) < np.linspace(0.1, 0.0, 4751)).astype(int)  # a ranking that beats random
    run = reading(labels, perfect_scores=False)
    outcomes = evaluate.rule_outcomes(run, ARGS, seed=0)
    assert set(outcomes) == {"0.8", "0.9", "0.95"} and set(outcomes["0.95"]) == set(stopping.RULES)
    for target, rules in outcomes.items():
        for name, o in rules.items():
            assert o["reached_target"] == (o["recall"] >= float(target)), name
    assert math.isclose(outcomes["0.95"]["read_share"]["read_share"], 0.5, abs_tol=1e-3)


def test_counting_process_includes_needed_falls_with_the_share_read():
    from screening.active.stopping.counting import includes_needed

    # 20 includes until 5% read, then cut by the share read at each 2.5% step: 19, 18, 16, 14, ... 0 from 35%
    assert [includes_needed(s) for s in (0.0, 0.03, 0.05, 0.075, 0.1, 0.125, 0.2, 0.34, 0.35, 1.0)] == [
        20, 20, 19, 18, 16, 14, 8, 1, 0, 0]  # fmt: skip


def test_counting_process_stops_on_a_tiny_search_before_its_end():
    labels = np.r_[np.ones(12, int), np.zeros(52, int)]  # 64 records, 12 includes first (a CLEF 2017 topic's size)
    rule = stopping.build_rules(ARGS, 0.95, ["counting_process"])["counting_process"]
    assert not rule.decide(stopping.ReadingState(labels[:9], 64)).stop  # under min_read = 10 records
    point = rule.first_stop(reading(labels))
    assert point is not None and point.found == 12 and point.position < 64


def test_rules_with_scores_are_asked_at_each_retrain_and_every_percent():
    run = reading(ALL_FIRST)  # 2000 records: every 20 records from the first retrain, and at each retrain
    points = checkpoints(run)
    assert set(run.retrain_points) <= set(points) and {2, 22, 42, 1982} <= set(points)
    assert np.diff(points).max() <= 20 and points == sorted(set(points))
    stream = evaluate.SimulatedReading(ALL_FIRST, np.arange(2000))  # read elsewhere: no retrains
    assert checkpoints(stream) == []  # no scores: the rules that need them are never asked
    assert checkpoints(stream, needs_scores=False) == list(range(1, 2001))


def test_agreement_stops_only_where_both_counting_processes_stop():
    """On every state of a reading, counting_process_agree says stop exactly when both of its parts do, with the
    lower of their recall estimates."""
    rules = stopping.build_rules(
        ARGS, 0.9, ["counting_process", "counting_process_classifier", "counting_process_agree"]
    )
    run = reading(ALL_FIRST)
    stops = []
    for n in (50, 100, 150, 200, 400, 1000):
        state = run.state(n)
        a, b, both = (rules[name].decide(state) for name in rules)
        assert both.stop == (a.stop and b.stop)
        estimates = [d.recall_estimate for d in (a, b) if d.recall_estimate is not None]
        assert both.recall_estimate == (min(estimates) if estimates else None)
        stops.append(both.stop)
    assert stops[-1] and not stops[0]  # 100 includes first: not after 50 records, surely after 1000


def test_counting_process_gives_no_estimate_before_its_minimum_includes():
    rule = stopping.build_rules(ARGS, 0.95, ["counting_process"])["counting_process"]
    early = rule.decide(stopping.ReadingState(np.r_[1, 0], 2000))  # 1 include in 2 records: a fit would say 1.0
    assert (early.stop, early.recall_estimate, early.interval) == (False, None, None)
    assert early.detail["status"] == "waits for 10 records read"
    short = rule.decide(stopping.ReadingState(np.r_[np.ones(15, int), np.zeros(85, int)], 2000))  # 5% read
    assert short.recall_estimate is None and short.detail["status"] == "waits for 19 includes at this share read"
    enough = rule.decide(stopping.ReadingState(np.r_[np.ones(19, int), np.zeros(81, int)], 2000))
    assert 0 < enough.recall_estimate <= 1 and enough.interval is not None


def test_a_search_read_to_its_end_without_an_include_stops_every_rule():
    state = stopping.ReadingState(np.zeros(12, int), 12)
    for name, rule in stopping.build_rules(ARGS, review=True).items():
        entry = rule.entry(state)
        assert (entry["stop"], entry["recall_estimate"], entry["interval"]) == (True, 1.0, [1.0, 1.0]), name
    front = stopping.frontier(state.labels, 12)
    assert (front["recall_bound"], front["target_confidence"], front["expected_missed_high"]) == (1.0, 1.0, 0.0)
    assert stopping.excludes_to_certify(state.labels, 12) == 0
    assert stopping.hypergeometric_p(np.zeros(11, int), 12) == 1.0  # one record left: nothing certified yet
