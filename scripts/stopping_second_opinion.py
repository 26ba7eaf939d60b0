#!/usr/bin/env python
"""Does a second opinion before stopping make a rule reliable at a target recall? The SAFE procedure (Boetje & van
de Schoot, "The SAFE procedure: a practical stopping heuristic for active learning-based screening in systematic
reviews and meta-analyses", Systematic Reviews 13, 2024) switches to a different model once a stopping heuristic
fires. Here: when the base rule says stop, a second ranker (default TF-IDF + naive Bayes) is fitted on the labels
read and its top m unread records are read; none an include: stop, the m records counted as read; an include: go on
with the default ranker retrained with them, and check again at the next stop. Each run starts from the reading
`scripts/benchmark_screening.py --readings_dir` kept (the default ranker's, seeds 0..S-1) up to the base rule's first
stop and is simulated on from there with the project's ranker, loop and rules. The overshoot is counted from the
oracle stop of the order actually read (a run that stops short is read on with the default ranker to find it).
m = 0 is the base rule alone. Writes a markdown table: each base rule x m, against the bar.

    python scripts/stopping_second_opinion.py --readings_dir readings --data_dir ../shared/data --seeds 10
"""

import datetime
import math
import sys
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_screening import (  # noqa: E402
    SIX,
    add_bar_arguments,
    commit,
    kept_readings,
    load,
    load_reading,
    machine,
    readings_parser,
)

from screening import outputs  # noqa: E402
from screening.active.loop import LoopArguments, choose_batch, simulate_loop  # noqa: E402
from screening.active.rankers import RankerArguments, build_ranker  # noqa: E402
from screening.active.stopping import RULES  # noqa: E402
from screening.active.stopping.base import ReadingState  # noqa: E402
from screening.errors import exit_on_input_error  # noqa: E402

BASES = (  # (rule, confidence), each run at the target judged
    ("counting_process", 0.5),
    ("counting_process", 0.8),
    ("counting_process", 0.95),
    ("counting_process_steady", 0.5),
    ("counting_process_steady", 0.8),
)


def parse(argv=None):
    parser = readings_parser(__doc__)
    parser.add_argument("--data_dir", required=True, help="The reviews' CSV files (CLEF topics in clef2017/).")
    parser.add_argument("--seeds", type=int, default=10, help="Seeds 0..S-1 of the default ranker's readings.")
    parser.add_argument("--target", type=float, default=0.9, help="The target recall the rules run at and are judged.")
    parser.add_argument("--check_sizes", default="0,5,10,20", help="m: records the second ranker reads per check.")
    parser.add_argument("--second_ranker", default="tfidf_nb", help="The registered ranker giving the second opinion.")
    parser.add_argument("--feature_cache_dir", default=None, help="Embedding cache of the default ranker.")
    parser.add_argument("--workers", type=int, default=2, help="Reviews simulated at once.")
    add_bar_arguments(parser)
    parser.add_argument("--output", default="benchmarks/stopping_second_opinion.md", help="The markdown written.")
    args = parser.parse_args(argv)
    try:
        args.check_sizes = [int(m) for m in args.check_sizes.split(",")]
    except ValueError:
        parser.error(f"--check_sizes: comma-separated whole numbers; got {args.check_sizes!r}")
    if min(args.check_sizes) < 0:
        parser.error("--check_sizes: every m must be >= 0")
    return args


def second_opinion_run(default, second, labels, reading, rule, check_size, target, seed=0):
    """One run: the kept `reading` up to `rule`'s first stop, then checks of `check_size` records by the `second`
    ranker, reading on with `default` after each check that finds an include. `labels`: every record's, by row.
    Returns stop (records read), found, checks, includes the checks found, n_target of the order read."""
    records, total = labels.size, int(labels.sum())

    def read_on(order, until):  # the screening loop with the default ranker, from the rows read in `order`
        return simulate_loop(default, labels, order, LoopArguments(), seed, until=until).order.tolist()

    first = rule.first_stop(reading)
    order = reading.order[: first.position if first else records].tolist()
    checks = by_checks = 0
    while first and check_size and len(order) < records:
        scores = second.fit_score(np.asarray(order), labels[order])
        top = choose_batch(scores, np.setdiff1d(np.arange(records), order), check_size)
        order += top.tolist()
        checks, by_checks = checks + 1, by_checks + int(labels[top].sum())
        if not labels[top].any():
            break
        order = read_on(order, lambda rows: rule.decide(ReadingState(labels[rows], records)).stop)
    stop, found = len(order), int(labels[order].sum())
    needed = math.ceil(target * total - 1e-9)
    if found < needed:  # the oracle stop: read on with the default ranker until the target is reached
        order = read_on(order, lambda rows: labels[rows].sum() >= needed)
    n_target = int(np.searchsorted(np.cumsum(labels[order]), needed)) + 1
    return {"stop": stop, "found": found, "checks": checks, "by_checks": by_checks, "n_target": n_target}


def review_runs(job):
    """Every base rule x check size on one review's kept readings."""
    args, review, paths = job
    frame, labels = load(args.data_dir, review)
    labels = np.asarray(labels)
    default = build_ranker(frame, RankerArguments(feature_cache_dir=args.feature_cache_dir))
    second = build_ranker(frame, RankerArguments(ranker=args.second_ranker, feature_cache_dir=args.feature_cache_dir))
    runs = []
    for seed, path in paths:
        reading = load_reading(path)
        if not np.array_equal(labels[reading.order], reading.labels):
            raise SystemExit(f"error: {path}: its labels are not {review}'s in --data_dir {args.data_dir}")
        for name, confidence in BASES:
            for m in args.check_sizes:
                rule = RULES[name](args.target, confidence)
                run = second_opinion_run(default, second, labels, reading, rule, m, args.target, seed)
                runs.append({**run, "review": review, "base": (name, confidence), "m": m, "records": labels.size,
                             "reached": run["found"] >= math.ceil(args.target * labels.sum() - 1e-9)})  # fmt: skip
    print(f"{review}: {len(paths)} runs", flush=True)
    return runs


def markdown(runs, args):
    lines = [
        f"# A second opinion before stopping, at target {args.target:g}",
        "",
        f"Date {datetime.date.today().isoformat()}, commit {commit()}, machine: {machine()}. The default ranker's "
        f"kept readings, seeds 0-{args.seeds - 1} ({len(runs) // (len(BASES) * len(args.check_sizes))} runs). "
        f"When the base rule says stop, `{args.second_ranker}` fitted on the labels read reads its top m "
        "unread records; an include among them: go on with the default ranker. Reliability: share of runs reaching "
        "the target; overshoot: (n_stop - n_target)/N, n_target the oracle stop of the order read. The bar: "
        f"reliability >= {args.bar_reliability:g} with mean overshoot <= {args.bar_overshoot:g}.",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        "| base rule | confidence | m | runs | reliability | overshoot | share read | checks a run | includes the "
        "checks found | meets the bar | runs short, by review |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, confidence in BASES:
        for m in args.check_sizes:
            rows = [r for r in runs if r["base"] == (name, confidence) and r["m"] == m]
            reliability = float(np.mean([r["reached"] for r in rows]))
            overshoot = float(np.mean([(r["stop"] - r["n_target"]) / r["records"] for r in rows]))
            share = float(np.mean([r["stop"] / r["records"] for r in rows]))
            short = Counter(r["review"] for r in rows if not r["reached"])
            where = ", ".join(f"{review} ({n})" for review, n in short.most_common()) or "-"
            meets = "yes" if reliability >= args.bar_reliability and overshoot <= args.bar_overshoot else "no"
            lines.append(
                f"| {name} | {confidence:g} | {m} | {len(rows)} | {reliability:.3f} | {overshoot:.3f} | {share:.3f} "
                f"| {np.mean([r['checks'] for r in rows]):.2f} | {sum(r['by_checks'] for r in rows)} | {meets} "
                f"| {where} |"
            )
    first = [r for r in runs if r["base"] == BASES[0] and r["m"] == args.check_sizes[0]]
    six = sum(r["review"] in SIX for r in first)
    lines += ["", f"Runs per row: {six} on the six shared reviews, {len(first) - six} on the CLEF 2017 topics."]
    return "\n".join(lines) + "\n"


def main():
    args = parse()
    by_review = {}
    for review, seed, path in kept_readings(args.readings_dir, range(args.seeds)):
        by_review.setdefault(review, []).append((seed, path))
    if not by_review:
        raise SystemExit(f"error: --readings_dir {args.readings_dir} holds no default-ranker readings")
    jobs = [(args, review, paths) for review, paths in by_review.items()]
    if args.workers > 1:
        with Pool(args.workers) as pool:
            runs = [run for part in pool.imap(review_runs, jobs) for run in part]
    else:
        runs = [run for job in jobs for run in review_runs(job)]
    outputs.write_text(args.output, markdown(runs, args))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    exit_on_input_error(main)
