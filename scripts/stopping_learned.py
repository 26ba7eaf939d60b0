#!/usr/bin/env python
"""Can a stop learned on other reviews reach a target recall reliably? Leave one review out on the readings
`scripts/benchmark_screening.py --readings_dir` kept (the default ranker's runs; no ranker runs): a gradient-boosted
classifier (scikit-learn's HistGradientBoostingClassifier, defaults) on 14 features a review has at each of its
checkpoints predicts whether the target recall is reached; the rule stops at the first checkpoint whose probability
reaches a threshold. For each held-out review the classifier is fitted on the other reviews' runs at seeds
0..S-1 (each run weighted alike) and the threshold chosen on those reviews alone, by 6-fold cross-validation over
reviews (the least threshold whose out-of-fold first stops reach the target in >= --bar_reliability of the runs;
the highest on the grid when none does); the held-out review's runs at seeds 0..S-1, and at seeds S..S+F-1 with
--fresh_seeds F, are judged. Writes a markdown table per review and pooled.

    python scripts/stopping_learned.py --readings_dir readings --seeds 10 --fresh_seeds 10
"""

import datetime
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_screening import SIX, commit, kept_readings, load_reading, machine, readings_parser  # noqa: E402
from scipy.stats import poisson  # noqa: E402

from screening import outputs  # noqa: E402
from screening.active.stopping import RULES, evaluate  # noqa: E402
from screening.active.stopping.base import checkpoints  # noqa: E402
from screening.errors import exit_on_input_error  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
FEATURES = (
    "share read", "log N", "includes found", "includes per record read", "excludes since the last include / N",
    "excludes since the last include / read", "includes in the last 5% of N read", "includes in the last 10% of N",
    "recall estimate: counting process (exponential)", "recall estimate: counting process (best rate)",
    "recall estimate: counting process + classifier", "recall at the counting process's 95% Poisson bound",
    "share read when half the includes were found / share read", "minimum includes met",
)  # fmt: skip


def parse(argv=None):
    parser = readings_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="Seeds 0..S-1: fitted on, and judged.")
    parser.add_argument("--fresh_seeds", type=int, default=0, help="Seeds S..S+F-1: judged only (0: none).")
    parser.add_argument("--target", type=float, default=0.9, help="The target recall predicted and judged.")
    parser.add_argument("--bar_reliability", type=float, default=0.95, help="The reliability the threshold seeks.")
    parser.add_argument("--output", default="benchmarks/stopping_learned.md", help="The markdown written.")
    return parser.parse_args(argv)


def features(reading, target):
    """(X, reached, points): the features at each of the run's checkpoints (a review asks there), whether the target
    recall is reached there, and the checkpoints."""
    plain = RULES["counting_process"](rate="exponential")
    best = RULES["counting_process"](rate="best")
    classifier = RULES["counting_process_classifier"](rate="exponential")
    labels, n_records = reading.labels, reading.records
    found_by = np.concatenate([[0], np.cumsum(labels)])
    positions = np.flatnonzero(labels) + 1
    rows, points = [], checkpoints(reading)
    for n in points:
        found = int(found_by[n])
        state = reading.state(n)
        recalls = [0.0, 0.0, 0.0, 0.0]
        if found:
            left = [rule.remaining(state)[0] for rule in (plain, best)]
            left += [classifier.remaining(state)[0] if state.unread_scores is not None else None]
            left += [float(poisson.ppf(0.95, left[0]))]
            recalls = [found / (found + x) if x is not None else 0.0 for x in left]  # 0: no scores yet
        last = positions[found - 1] if found else 0
        half = positions[math.ceil(found / 2) - 1] / n if found else 1.0
        rows.append([
            n / n_records, math.log(n_records), found, found / n, (n - last) / n_records, (n - last) / n,
            found - found_by[max(n - math.ceil(0.05 * n_records), 0)],
            found - found_by[max(n - math.ceil(0.10 * n_records), 0)],
            *recalls, half, float(plain.waiting(state) is None),
        ])  # fmt: skip
    reached = np.asarray(points) >= evaluate.target_point(labels, target)
    return np.asarray(rows, dtype=np.float64), reached, np.asarray(points)


def fit(runs):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = np.concatenate([r["X"] for r in runs])
    y = np.concatenate([r["reached"] for r in runs])
    weight = np.concatenate([np.full(len(r["reached"]), 1 / len(r["reached"])) for r in runs])
    if y.min() == y.max():
        return None  # one class: nothing to learn
    return HistGradientBoostingClassifier(random_state=0).fit(X, y, sample_weight=weight)


def first_stops(model, runs):
    """Per run, per threshold: (reached the target, overshoot) at its first stop (at N when it never stops)."""
    out = []
    for run in runs:
        p = model.predict_proba(run["X"])[:, 1] if model is not None else np.zeros(len(run["points"]))
        per = {}
        for threshold in THRESHOLDS:
            hit = np.flatnonzero(p >= threshold)
            n = int(run["points"][hit[0]]) if hit.size else run["records"]
            per[threshold] = (n >= run["n_target"], (n - run["n_target"]) / run["records"])
        out.append(per)
    return out


def choose_threshold(runs, bar):
    """The least threshold whose first stops, out of fold over 6 groups of reviews, reach the target in >= `bar` of
    the runs; the highest when none does. Returns (threshold, its out-of-fold reliability)."""
    reviews = sorted({r["review"] for r in runs})
    outcomes = []
    for fold in (reviews[i::6] for i in range(min(6, len(reviews)))):
        held = [r for r in runs if r["review"] in fold]
        outcomes += first_stops(fit([r for r in runs if r["review"] not in fold]), held)
    for threshold in THRESHOLDS:
        reliability = float(np.mean([o[threshold][0] for o in outcomes]))
        if reliability >= bar:
            return threshold, reliability
    return THRESHOLDS[-1], float(np.mean([o[THRESHOLDS[-1]][0] for o in outcomes]))


def leave_one_review_out(runs, fresh, bar):
    """Per review: (threshold, its training reliability, [(reached, overshoot)] at the seeds fitted on, and at the
    fresh seeds)."""
    out = {}
    for review in dict.fromkeys(r["review"] for r in runs):
        train = [r for r in runs if r["review"] != review]
        threshold, inner = choose_threshold(train, bar)
        model = fit(train)
        judged = [o[threshold] for o in first_stops(model, [r for r in runs if r["review"] == review])]
        later = [o[threshold] for o in first_stops(model, [r for r in fresh if r["review"] == review])]
        out[review] = threshold, inner, judged, later
        print(f"{review}: threshold {threshold:g}, reached {np.mean([o[0] for o in judged]):.2f}", flush=True)
    return out


def figures(outcomes):
    if not outcomes:
        return ""
    return f"{np.mean([o[0] for o in outcomes]):.3f} / {np.mean([o[1] for o in outcomes]):.3f} ({len(outcomes)})"


def markdown(results, args, runs):
    fresh = f"seeds {args.seeds}-{args.seeds + args.fresh_seeds - 1}" if args.fresh_seeds else ""
    lines = [
        f"# A stop learned on the other reviews, at target {args.target:g}",
        "",
        f"Date {datetime.date.today().isoformat()}, commit {commit()}, machine: {machine()}. The default ranker's "
        f"kept readings, seeds 0-{args.seeds - 1} ({len(runs)} runs). Leave one review out: the classifier fitted on "
        f"the other reviews, its threshold chosen on them by 6-fold cross-validation over reviews (the least reaching "
        f"{args.target:g} in >= {args.bar_reliability:g} of their runs; {THRESHOLDS[-1]:g} when none does). Cells: "
        "reliability (share of runs reaching the target) / mean overshoot (n_stop - n_target)/N (runs).",
        "",
        f"Features ({len(FEATURES)}): {'; '.join(FEATURES)}.",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"| review | group | threshold | its training reviews' reliability | seeds 0-{args.seeds - 1} | {fresh} |",
        "|---|---|---|---|---|---|",
    ]
    for review, (threshold, inner, judged, later) in results.items():
        group = "six" if review in SIX else "CLEF"
        lines.append(f"| {review} | {group} | {threshold:g} | {inner:.3f} | {figures(judged)} | {figures(later)} |")
    judged = [o for *_, j, _ in results.values() for o in j]
    later = [o for *_, lt in results.values() for o in lt]
    lines.append(f"| **all** | | | | **{figures(judged)}** | **{figures(later)}** |")
    return "\n".join(lines) + "\n"


def load_runs(args, seeds):
    runs = []
    for review, _, path in kept_readings(args.readings_dir, seeds):
        reading = load_reading(path)
        X, reached, points = features(reading, args.target)
        runs.append({"review": review, "X": X, "reached": reached, "points": points, "records": reading.records,
                     "n_target": evaluate.target_point(reading.labels, args.target)})  # fmt: skip
    return runs


def main():
    args = parse()
    runs = load_runs(args, range(args.seeds))
    if len({r["review"] for r in runs}) < 3:
        raise SystemExit(f"error: --readings_dir {args.readings_dir} holds default-ranker readings of < 3 reviews")
    fresh = load_runs(args, range(args.seeds, args.seeds + args.fresh_seeds))
    results = leave_one_review_out(runs, fresh, args.bar_reliability)
    outputs.write_text(args.output, markdown(results, args, runs))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    exit_on_input_error(main)
