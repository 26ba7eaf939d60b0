"""Rules measured on simulated runs: each rule's stop at each target recall, and the figures over runs
(reliability, recall, share read, overshoot) that choose the recommended rule."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from .base import RULES, ReadingState, StopPoint, build_rules

TARGETS = (0.8, 0.9, 0.95)
RELIABILITY_FILE = Path(__file__).resolve().parents[1] / "rule_reliability.json"


@dataclass
class SimulatedReading:
    """A complete simulated reading: every record's label in reading order (`labels`, length N), the rows in that
    order (`order`), and the loop's retrains: `retrains[i] = (records read, scores of every record)`, ascending.
    Once every include is found the loop stops retraining and the last scores rank the rest (retrain points go
    on with the batch schedule, the scores kept)."""

    labels: np.ndarray
    order: np.ndarray
    retrains: list = field(default_factory=list)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.order = np.asarray(self.order)
        self._points = np.asarray([point for point, _ in self.retrains], dtype=np.int64)
        self._states = {}

    @property
    def records(self):
        return int(self.labels.size)

    @property
    def retrain_points(self):
        return self._points.tolist()

    def state(self, n):
        """What a rule sees after n records: the labels, and the scores of the last retrain at or before n (one
        state per n, shared by the rules and targets, with what they compute alike)."""
        if n not in self._states:
            at = int(np.searchsorted(self._points, n, side="right")) - 1
            if at < 0 or self.retrains[at][1] is None:
                self._states[n] = ReadingState(self.labels[:n], self.records)
            else:
                scores = self.retrains[at][1]
                self._states[n] = ReadingState(
                    self.labels[:n], self.records, scores[self.order[n:]], scores[self.order[:n]]
                )
        return self._states[n]

    def stop_point(self, n, decision):
        return StopPoint(n, n, int(self.labels[:n].sum()), decision)


def target_point(labels, target):
    """n_target: the first point where recall >= target (the oracle's stop)."""
    cumulative = np.cumsum(labels)
    return int(np.searchsorted(cumulative, math.ceil(target * cumulative[-1] - 1e-9))) + 1


def outcome(point: StopPoint | None, reading, target, guarantee):
    """A rule's figures on one run at one target: stop (records read; N when it never stops), recall at the stop,
    reached_target, read_share, overshoot = (stop - n_target) / N, and its own recall estimate and interval."""
    records, includes = reading.records, int(reading.labels.sum())
    if point is None:
        read, found, estimate, interval, stopped = records, includes, None, None, False
    else:
        read, found, stopped = point.read, point.found, True
        estimate, interval = point.decision.recall_estimate, point.decision.interval
    recall, n_target = found / includes, target_point(reading.labels, target)
    return {
        "records": records,
        "n_target": n_target,
        "stop": int(read),
        "stopped": stopped,
        "found": int(found),
        "recall": recall,
        "reached_target": bool(recall >= target - 1e-12),
        "read_share": read / records,
        "overshoot": (read - n_target) / records,
        "recall_estimate": None if estimate is None else float(estimate),
        "interval": None if interval is None else [float(x) for x in interval],
        "guarantee": guarantee,
    }


def rule_outcomes(reading, stop_args, targets=TARGETS, seed=0, names=None, with_scores=True):
    """{target: {rule: outcome}} for one simulated run (`SimulatedReading`) at each target recall (keys as
    '0.95'). `with_scores` False leaves out the rules that need the ranker's scores (a stream from elsewhere)."""
    results = {}
    for target in targets:
        rules = build_rules(stop_args, target, names)
        results[f"{target:g}"] = {
            name: outcome(rule.first_stop(reading, seed), reading, target, rule.guarantee)
            for name, rule in rules.items()
            if with_scores or not rule.needs_scores
        }
    return results


def run_at_stricter_targets(run):
    """A run's outcomes with, at each target t, every rule that states a recall run at each stricter target t' as
    `rule@t'` (a rule that stops at recall >= t' has reached t too; its overshoot is counted from t's oracle stop).
    Outcomes written without `n_target` and `records` get none."""
    out = {target: dict(rules) for target, rules in run.items()}
    for target, rules in run.items():
        for stricter, others in run.items():
            if float(stricter) <= float(target):
                continue
            for name, o in others.items():
                base = rules.get(name)
                if guarantee_of(name) == "none" or base is None or "n_target" not in base or "n_target" not in o:
                    continue  # a heuristic stops where it stops, whatever the target
                out[target][f"{name}@{stricter}"] = {
                    **o,
                    "reached_target": bool(o["recall"] >= float(target) - 1e-12),
                    "overshoot": (o["stop"] - base["n_target"]) / o["records"],
                    "n_target": base["n_target"],
                }
    return out


def aggregate_outcomes(runs):
    """Over runs (each `rule_outcomes`' dict): per target and rule, runs, reliability (share reaching the target)
    with its 95% interval (`reliability_interval`), mean and min recall, mean share read, mean overshoot; each rule
    run at a stricter target counts too, as `rule@t'` (`run_at_stricter_targets`)."""
    table = {}
    for run in runs:
        for target, rules in run_at_stricter_targets(run).items():
            for name, o in rules.items():
                table.setdefault(target, {}).setdefault(name, []).append(o)
    return {
        target: {
            name: {
                "runs": len(o),
                "reliability": float(np.mean([x["reached_target"] for x in o])),
                "reliability_interval": reliability_interval(sum(bool(x["reached_target"]) for x in o), len(o)),
                "recall_mean": float(np.mean([x["recall"] for x in o])),
                "recall_min": float(np.min([x["recall"] for x in o])),
                "read_share": float(np.mean([x["read_share"] for x in o])),
                "overshoot": float(np.mean([x["overshoot"] for x in o])),
            }
            for name, o in rules.items()
        }
        for target, rules in table.items()
    }


def reliability_interval(reached, runs, confidence=0.95):
    """The exact (Clopper-Pearson) `confidence` interval on a rule's reliability, `reached` of `runs` runs. The
    runs of one review share its records, so they are not independent: the interval is, if anything, too narrow."""
    interval = binomtest(reached, runs).proportion_ci(confidence, method="exact")
    return [float(interval.low), float(interval.high)]


def recommend(aggregate, target, reliability=0.95, sure=True, guarantees=("certified", "estimate")):
    """The rule whose reliability at `target` is at least `reliability`, with the least mean overshoot (None if
    none). `sure`: judged by the low end of its 95% interval, not by its share of runs (181 of 190 runs, 0.953,
    reach down to 0.912), so a rule that barely reached the bar on these runs is not chosen over one that clears
    it; False: by the share (the issue's bar, in `stopping_frontier.py`). Among the rules that state a
    recall (`guarantees`: a heuristic's fixed share or run length, tuned on these reviews, says nothing about the
    recall of the next one). A rule run at a stricter target (`rule@t'`) is a candidate too: asking for less
    recall never makes the team read more than asking for more would."""
    rules = aggregate.get(f"{target:g}", {})
    fit = [
        (o["overshoot"], name)
        for name, o in rules.items()
        if (o["reliability_interval"][0] if sure else o["reliability"]) >= reliability
        and guarantee_of(name) in (*guarantees, None)
    ]
    return min(fit)[1] if fit else None


def split_name(name):
    """'rule@0.95' -> ('rule', 0.95); 'rule' -> ('rule', None): a rule and the stricter target it runs at."""
    base, _, stricter = name.partition("@")
    return base, float(stricter) if stricter else None


def guarantee_of(name):
    """The guarantee of a registered rule, also as `rule@t'`; None for a name the registry does not hold."""
    rule = RULES.get(split_name(name)[0])
    return None if rule is None else rule.guarantee


def reliability_table(path=RELIABILITY_FILE):
    """The measured reliability of each rule per target, and the recommended rule per target, as the benchmark
    wrote them ({"recommended": {target: rule}, "rules": {target: {rule: figures}}, "measured_on": ...})."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"recommended": {}, "rules": {}}


def recommended_rule(target, table=None):
    """(rule name, its measured figures or None) recommended at `target`: the entry for the smallest measured
    target at or above it, else the hypergeometric rule (certified, no figures). Below that measured target the
    rule runs at it (`rule@t'`), so the figures measured there hold for `target` too."""
    table = table or reliability_table()
    measured = sorted(float(t) for t in table.get("recommended", {}))
    above = [t for t in measured if t >= target - 1e-9]
    if not above:
        return "hypergeometric", None
    key = f"{above[0]:g}"
    name = table["recommended"][key]
    figures = table.get("rules", {}).get(key, {}).get(name)
    if "@" not in name and above[0] > target + 1e-9:
        name = f"{name}@{key}"
    return name, figures
