#!/usr/bin/env python
"""Prioritised screening benchmark on 19 reviews: the six shared reviews and the 13 CLEF TAR 2017 topics
(data_dir/clef2017), seeds 0..S-1, 1 include + 1 exclude as priors (the same ones for every ranker). Rankers:
`default` (the project's default ranker and batch schedule, as `simulate` runs them), `default_fp32` (the same with
fp32 embeddings: the precision check), any registered ranker on the `--batch_size` schedule (`NAME`) or on its own
(`NAME@SCHEDULE`, e.g. tfidf_svm@1%), and ASReview 3.0.8's default (`asreview simulate` in a temporary folder;
optional: `pip install .[benchmark]`). Every run goes through the same figures and stopping rules
(screening.active). Each run's outcome is kept in --results_dir (a rerun skips finished runs), and the markdown is
rewritten after every run, so a partial benchmark still reports what it has. With --readings_dir each simulated
run's reading (order and the ranker's scores at every retrain) is kept, and --rules_from_readings measures the
stopping rules again from them without running a ranker. Runs kept at seeds S and above (from an earlier
`--seeds` larger than S) are left out of every table and reported apart: the rules recommended on seeds 0..S-1,
measured on reading orders they were not chosen on.

    nice -n 10 python scripts/benchmark_screening.py --seeds 10 --feature_cache_dir cache
"""

import datetime
import json
import math
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import _cli  # noqa: F401  (repo root on sys.path)
import numpy as np
from _reviews import CLEF, review_file

from screening import outputs
from screening.active.loop import LoopArguments
from screening.active.rankers import RankerArguments, build_ranker
from screening.active.simulate import SimulationArguments, draw_priors, simulate_run, simulation_figures
from screening.active.stopping import RULES, StoppingArguments, build_rules, evaluate, floor_read_share
from screening.cli import ScriptArgumentParser
from screening.data import parse_labels, read_table

SIX = (
    "van_de_Schoot_2018",
    "Appenzeller-Herzog_2020",
    "Cohen_2006_ACEInhibitors",
    "CLEF2017_CD010438",
    "Wallace_2010_ProtonBeam",
    "Wallace_2010_Micronutrients",
)
REVIEWS = SIX + CLEF
RANKERS = ("default", "tfidf_features", "tfidf_svm@1%", "tfidf_lr", "tfidf_nb", "features_lr", "asreview")
DEFAULT = "default"
SELECTION_SEEDS = range(
    5
)  # the default was chosen on these seeds of the CLEF topics (benchmarks/screening_protocol.md)
GROUPS = {  # name: (reviews, seeds kept or None for all)
    "the six shared reviews (untouched by the choice)": (SIX, None),
    "the 13 CLEF topics, seeds 5-9 (fresh seeds of the selection set)": (CLEF, range(5, 100)),
    "the 13 CLEF topics, seeds 0-4 (the selection runs)": (CLEF, SELECTION_SEEDS),
    "all 19 reviews, every seed": (REVIEWS, None),
}


def ranker_setup(label, args):
    """The ranker and loop arguments a --rankers entry names: `default`, `default_fp32`, `NAME` (on --batch_size) or
    `NAME@SCHEDULE`."""
    name, _, schedule = label.partition("@")
    if name in ("default", "default_fp32"):
        precision = "fp32" if name == "default_fp32" else "auto"
        ranker_args = RankerArguments(feature_cache_dir=args.feature_cache_dir, embedding_precision=precision)
        return ranker_args, LoopArguments()
    ranker_args = RankerArguments(ranker=name, feature_cache_dir=args.feature_cache_dir)
    return ranker_args, LoopArguments(batch_size=schedule or args.batch_size)


def file_label(label):
    return label.replace("@", "_at_").replace("%", "pct")


def parse(argv=None):
    parser = ScriptArgumentParser(description=__doc__, formatter_class=__import__("argparse").RawTextHelpFormatter)
    parser.add_argument(
        "--data_dir",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
        help="Folder of the six review CSVs; the 13 CLEF topics are read from its clef2017/.",
    )
    parser.add_argument("--output", default="benchmarks/screening.md", help="The markdown written.")
    parser.add_argument("--results_dir", default="benchmarks/screening_runs", help="One JSON per finished run.")
    parser.add_argument(
        "--seeds",
        type=int,
        default=10,
        help="Seeds 0..S-1 per review and ranker; runs kept at later seeds are reported apart (fresh seeds).",
    )
    parser.add_argument(
        "--rankers",
        default=",".join(RANKERS),
        help="Comma-separated: default, default_fp32, a registered ranker NAME or NAME@SCHEDULE, asreview.",
    )
    parser.add_argument("--reviews", default=",".join(REVIEWS), help="Comma-separated review file stems.")
    parser.add_argument("--asreview", default="asreview", help="The asreview 3.0.8 command.")
    parser.add_argument("--feature_cache_dir", default=None, help="Embedding cache of features_lr.")
    parser.add_argument(
        "--batch_size", default="grow", help="Batch schedule of the rankers named without @SCHEDULE (not `default`)."
    )
    parser.add_argument("--readings_dir", default=None, help="Keep each simulated run's reading here (.npz).")
    parser.add_argument(
        "--rules_from_readings",
        action="store_true",
        help="Measure the stopping rules again from --readings_dir (no ranker runs) and rewrite the run JSONs.",
    )
    parser.add_argument(
        "--rules",
        default=None,
        help="Comma-separated rule names: --rules_from_readings measures these alone and keeps the other rules' "
        "stored outcomes (default: every rule).",
    )
    parser.add_argument(
        "--asreview_budget",
        type=float,
        default=0.5,
        help="ASReview reads at most this share of the records (--n-stop); enough for n95, WSS@95, "
        "recall@10%% and the consecutive-excludes rule; the rules that need the whole stream are "
        "reported for ASReview only where it found every include within the budget.",
    )
    parser.add_argument(
        "--targets", default="0.8,0.9,0.95", help="Target recalls at which every stopping rule is measured."
    )
    parser.add_argument(
        "--rule_reliability",
        default=None,
        help="Write each rule's measured figures and the recommended rule per target (the default ranker's runs) "
        "to this JSON, which `screen` reads (screening/active/rule_reliability.json).",
    )
    parser.add_argument(
        "--report_only", action="store_true", help="Write the markdown from --results_dir; run nothing."
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.rules.split(",")) - set(RULES)) if args.rules else []
    if unknown:
        parser.error(f"--rules: unknown rule {unknown[0]!r}; registered: {', '.join(RULES)}")
    return args


def load(data_dir, review):
    path = review_file(data_dir, review)
    frame = read_table(path, "--data_dir")
    return frame, parse_labels(frame, "judgement", path, "--data_dir")


def asreview_stream(args, frame, labels, priors, seed, work):
    """ASReview's reading order with `priors` (rows) and `seed`: labels in reading order (excludes after the last
    include, as it stops there), and its wall time."""
    data = Path(work) / "data.csv"
    if not data.exists():
        frame.rename(columns={"judgement": "included"}).to_csv(data, index=False)
    project = Path(work) / f"seed{seed}.asreview"
    project.unlink(missing_ok=True)
    command = [
        args.asreview,
        "simulate",
        str(data),
        "--prior-idx",
        *map(str, priors),
        "--seed",
        str(seed),
        "-o",
        str(project),
        "--n-stop",
        str(math.ceil(args.asreview_budget * labels.size)),
    ]
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, capture_output=True, cwd=work)  # it leaves synergy_cache.sqlite in its cwd
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_time = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    with zipfile.ZipFile(project) as archive, tempfile.TemporaryDirectory() as tmp:
        db = archive.extract(next(n for n in archive.namelist() if n.endswith("results.db")), tmp)
        rows = [r[0] for r in sqlite3.connect(db).execute("SELECT record_id FROM results ORDER BY rowid")]
    order = np.asarray(rows)
    if set(order[:2].tolist()) != set(priors):
        raise RuntimeError(f"asreview did not start from the priors {priors}: {order[:2]}")
    return order, wall, cpu_time


def asreview_rules(labels, order, seed, stop_args, targets):
    """The rules that read labels only, on ASReview's stream: all of them where it found every include (the unread
    records after it, all excludes); else consecutive_excludes alone, judged where it stops within the stream read
    (at its end when it does not)."""
    includes = int(labels.sum())
    read = np.zeros(labels.size, dtype=bool)
    read[order] = True
    rest = np.random.default_rng(seed).permutation(np.flatnonzero(~read))
    reading = evaluate.SimulatedReading(labels[np.concatenate([order, rest])], np.concatenate([order, rest]))
    if int(labels[order].sum()) == includes:
        return evaluate.rule_outcomes(reading, stop_args, targets, seed, with_scores=False)
    outcomes = {}
    for target in targets:
        rule = build_rules(stop_args, target, ["consecutive_excludes"])["consecutive_excludes"]
        point = rule.first_stop(reading, seed)
        if point is None or point.position > order.size:
            point = reading.stop_point(order.size, rule.decide(reading.state(order.size)))
        outcomes[f"{target:g}"] = {rule.name: evaluate.outcome(point, reading, target, rule.guarantee)}
    return outcomes


def one_run(args, review, ranker_name, seed, frame, labels, ranker_cache, work):
    """One run's figures and, per target recall, every stopping rule's outcome (stopping.evaluate.outcome)."""
    stop_args = StoppingArguments()
    targets = tuple(float(t) for t in args.targets.split(","))
    if ranker_name == "asreview":
        priors = draw_priors(labels, 1, 1, np.random.default_rng(seed)).tolist()
        order, wall, cpu_time = asreview_stream(args, frame, labels, priors, seed, work)
        figures = simulation_figures(labels[order], labels.size, int(labels.sum()))
        figures.update(seed=seed, wall_time_s=wall, cpu_time_s=cpu_time, records_screened=int(order.size))
        return {"figures": figures, "rules": asreview_rules(labels, order, seed, stop_args, targets)}
    ranker_args, loop_args = ranker_setup(ranker_name, args)
    if ranker_name not in ranker_cache:
        start = time.perf_counter()
        ranker_cache[ranker_name] = (build_ranker(frame, ranker_args), time.perf_counter() - start)
    ranker, build_time = ranker_cache[ranker_name]
    cpu = time.process_time()
    run = simulate_run(
        frame,
        labels,
        ranker_args,
        loop_args,
        SimulationArguments("d", "o", targets=args.targets),
        stop_args,
        seed,
        ranker,
    )
    run["figures"]["build_time_s"] = build_time
    run["figures"]["cpu_time_s"] = time.process_time() - cpu
    if args.readings_dir and run["reading"] is not None:
        save_reading(reading_path(args.readings_dir, review, ranker_name, seed), run["reading"])
    return {"figures": run["figures"], "rules": run["rules"]}


def run_path(args, review, ranker, seed):
    return Path(args.results_dir) / f"{review}__{file_label(ranker)}__seed{seed}.json"


def reading_path(readings_dir, review, ranker, seed):
    return Path(readings_dir) / f"{review}__{file_label(ranker)}__seed{seed}.npz"


def kept_readings(readings_dir, seeds, ranker=DEFAULT):
    """(review, seed, path) of each reading kept in `readings_dir` for `ranker` at `seeds`: the six, then the CLEF
    topics."""
    paths = [(review, s, reading_path(readings_dir, review, ranker, s)) for review in SIX + CLEF for s in seeds]
    return [(review, seed, path) for review, seed, path in paths if path.exists()]


def readings_parser(description):
    """The parser of a script that reads the kept readings (`--readings_dir`); the script adds its own arguments."""
    parser = ScriptArgumentParser(description=description, formatter_class=__import__("argparse").RawTextHelpFormatter)
    parser.add_argument("--readings_dir", required=True, help="The readings benchmark_screening.py kept (.npz).")
    return parser


def add_bar_arguments(parser):
    """The bar a stopping rule is judged against: --bar_reliability, --bar_overshoot."""
    parser.add_argument("--bar_reliability", type=float, default=0.95, help="The bar: least share of runs.")
    parser.add_argument("--bar_overshoot", type=float, default=0.10, help="The bar: most mean overshoot.")


def save_reading(path, reading):
    """A run's reading: labels and rows in reading order, the retrain points and the scores then (float32; NaN rows
    where there were none)."""
    points = np.asarray([p for p, _ in reading.retrains], dtype=np.int64)
    scores = np.full((points.size, reading.records), np.nan, dtype=np.float32)
    for i, (_, row) in enumerate(reading.retrains):
        if row is not None:
            scores[i] = row
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, labels=reading.labels, order=reading.order, retrain_points=points, retrain_scores=scores)


def load_reading(path):
    data = np.load(path)
    retrains = [
        (int(p), None if np.isnan(row).all() else row.astype(np.float64))
        for p, row in zip(data["retrain_points"], data["retrain_scores"])
    ]
    return evaluate.SimulatedReading(data["labels"], data["order"], retrains)


def run_rules(run):
    """A run's outcomes per target; runs written before the targets were added hold one target, 0.95."""
    rules = run["rules"]
    return rules if not rules or any(k[:1].isdigit() for k in rules) else {"0.95": rules}


def machine():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
    isa = "AVX-512" if "avx512f" in flags else "AVX2-only" if "avx2" in flags else "no AVX2"
    return f"{model}, {os.cpu_count()} cores, {isa}"


def commit():
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def mean_sd(values, fmt="{:.3f}"):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return "-"
    sd = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{fmt.format(values.mean())} ± {fmt.format(sd)}"


def cpu_mean(values):
    """Mean CPU seconds over the runs that recorded them (the first runs of a benchmark may not have)."""
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.1f}" if values else "-"


def review_means(results, review, ranker, seeds=None):
    """Mean n95 and WSS@95 of a ranker's runs on a review (the seeds in `seeds` only, when given), or None."""
    runs = [r["figures"] for r in results.get((review, ranker), []) if seeds is None or r["seed"] in seeds]
    if not runs:
        return None
    return np.mean([f["n95"] for f in runs]), np.mean([f["wss95"] for f in runs]), len(runs)


def against_asreview(results, rankers):
    """Each ranker against ASReview per group of reviews (GROUPS): reviews at or below ASReview's mean n95, mean
    WSS@95 of both, the worst review (largest n95 ratio to ASReview's) and the reviews more than 10% above it."""
    lines = [
        "## Against ASReview, per group of reviews",
        "",
        "On each review, the mean n95 over the seeds both have (ASReview's seeds: the table above). 'At or below': "
        "reviews where the ranker's mean n95 is at most ASReview's. The default was chosen on the CLEF topics' "
        "seeds 0-4 by benchmarks/screening_protocol.md; the six shared reviews were not run by any candidate before.",
        "",
        "| group | ranker | reviews | at or below ASReview | mean WSS@95 | ASReview's | worst review (n95 ratio) "
        "| > 10% above ASReview |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, (reviews, seeds) in GROUPS.items():
        for ranker in rankers:
            if ranker == "asreview":
                continue
            rows = []
            for review in reviews:
                theirs_seeds = {r["seed"] for r in results.get((review, "asreview"), [])}
                keep = theirs_seeds if seeds is None else theirs_seeds & set(seeds)
                ours, theirs = (
                    review_means(results, review, ranker, keep),
                    review_means(results, review, "asreview", keep),
                )
                if ours and theirs:
                    rows.append((review, ours, theirs))
            if not rows:
                continue
            ratios = {review: ours[0] / theirs[0] for review, ours, theirs in rows}
            worst = max(ratios, key=ratios.get)
            above = [f"{review} ({ratio:.2f})" for review, ratio in ratios.items() if ratio > 1.10]
            lines.append(
                f"| {group} | {ranker} | {len(rows)} | {sum(o[0] <= t[0] for _, o, t in rows)} "
                f"| {np.mean([o[1] for _, o, _ in rows]):.3f} | {np.mean([t[1] for _, _, t in rows]):.3f} "
                f"| {worst} ({ratios[worst]:.2f}) | {', '.join(above) or 'none'} |"
            )
    return lines + [""]


def precision_check(results, reviews):
    """The default with bf16 embeddings (auto on a bf16 CPU) against fp32, on the seeds both have: mean n95."""
    lines = [
        "## Embedding precision: the default at auto (bf16 here) against fp32",
        "",
        "| review | seeds | n95 auto | n95 fp32 | difference |",
        "|---|---|---|---|---|",
    ]
    totals = []
    for review in reviews:
        seeds = {r["seed"] for r in results.get((review, "default_fp32"), [])}
        ours, theirs = (
            review_means(results, review, "default", seeds),
            review_means(results, review, "default_fp32", seeds),
        )
        if ours and theirs:
            totals.append((ours[0], theirs[0]))
            lines.append(f"| {review} | {theirs[2]} | {ours[0]:.1f} | {theirs[0]:.1f} | {ours[0] - theirs[0]:+.1f} |")
    if not totals:
        return []
    worse = sum(a > b for a, b in totals)
    lines += [
        "",
        f"Mean n95 over {len(totals)} reviews: {np.mean([a for a, _ in totals]):.1f} at auto against "
        f"{np.mean([b for _, b in totals]):.1f} in fp32; auto reads more on {worse} of them.",
        "",
    ]
    return lines


PUBLISHED = [
    "### Published figures beside ours",
    "",
    "Share read = records read / N. The papers' CLEF TAR 2017 runs are on their own topic set (all 30-42 topics "
    "of the collection, up to ~10,000 records each, with their own rankers, mostly AutoTAR-style logistic "
    "regression retrained in growing batches); ours are the 13 topics of up to ~1,600 records whose texts were "
    "available, with this project's default ranker, 10 seeds each, 1 include + 1 exclude as priors. Small "
    "topics (64 and 114 records) weigh as much as large ones in our means.",
    "",
    "| rule (paper) | collection | target | reached target | share read | oracle's share |",
    "|---|---|---|---|---|---|",
    "| counting process + classifier (Bin-Hezam & Stevenson 2023) | CLEF 2017 | 0.9 | every topic | 0.152 | 0.057 |",
    "| point process, hyperbolic rate (Stevenson & Bin-Hezam 2024) | CLEF 2017 | 0.9 | 90% of topics | 0.147 | |",
    "| AutoStop (Li & Kanoulas 2020) | CLEF 2017 | 0.9 | 50% of topics | 0.42 | |",
    "| knee (Cormack & Grossman 2016) | CLEF 2017 | 1.0 | 83% | 0.29 | |",
    "| target method, certified (Lewis, Yang & Frieder 2021) | CLEF 2017 | 0.9 | every topic | 0.70 | |",
    "| hypergeometric (Callaghan & Mueller-Hansen; Repke et al. 2026) | 81-86 datasets | 0.95 | never below "
    "| overshoot 0.36 | |",
    "| QuantCI (Yang, Lewis & Frieder 2021; Repke et al. 2026) | 81-86 datasets | 0.95 | missed 3.9% of includes "
    "| overshoot 0.37 | |",
    "",
]


def group_rule_table(results, reviews, key):
    """The default ranker's rules at target `key` per group (the six, the 13 CLEF topics): reliability, share read
    and overshoot, with the oracle's mean share read (n_target / N), to set beside the papers' CLEF figures."""
    lines = [
        f"The default ranker per group at {key} (reliability / mean share read / mean overshoot; oracle: the mean "
        "share read at n_target):",
        "",
        "| group | runs | oracle | " + " | ".join(RULES) + " |",
        "|---|---|---|" + "---|" * len(RULES),
    ]
    for group, members in (("six", SIX), ("CLEF 13", CLEF)):
        runs = [r for review in members if review in reviews for r in results.get((review, DEFAULT), [])]
        table = evaluate.aggregate_outcomes([run_rules(r) for r in runs if r["rules"]]).get(key, {})
        if not table:
            continue
        oracle = np.mean([o["stop"] / r["figures"]["records"] - o["overshoot"] for r in runs
                          for o in [next(iter(run_rules(r)[key].values()))]])  # fmt: skip
        cells = [
            f"{table[rule]['reliability']:.2f} / {table[rule]['read_share']:.3f} / {table[rule]['overshoot']:.3f}"
            if rule in table
            else "-"
            for rule in RULES
        ]
        lines.append(f"| {group} | {len(runs)} | {oracle:.3f} | " + " | ".join(cells) + " |")
    return lines


def stopping_tables(results, args, reviews, rankers):
    """Per target: each rule's reliability, recall, share read and overshoot per ranker (pooled over reviews and
    seeds), the recommended rule, and per review the share read at 0.95 beside the floor."""
    lines = [
        "## Stopping rules",
        "",
        "Per target recall, rule and ranker, pooled over reviews and seeds: reliability (share of runs whose recall at "
        "the stop reached the target), mean and min recall at the stop, mean share of the records read (a sample "
        "rule's random sample included), mean overshoot (n_stop - n_target)/N with n_target the first point where "
        "recall reaches the target. Guarantee: certified (hypergeometric, audit, qbcb), estimate, none (assumptions: "
        "screening/active/stopping/). `rule@t'`: a rule that states a recall, run at the stricter target t' and "
        "judged at this one (its overshoot counted from this target's n_target). Recommended: among the rules that "
        "state a recall (and their rule@t'), the least overshoot with reliability >= 0.95 at the low end of its "
        "exact 95% interval over the runs (189 of 190 runs is enough; 181 of 190, 0.953, is not). Every rule is "
        "asked where a review asks it (at each retrain and every 1% of the records; on ASReview's stream, after "
        "every record) and judged at its first stop; the rules that read the ranker's scores are not run on "
        "ASReview's stream. "
        f"Confidence 0.95. Plot: {Path(args.output).with_suffix('').name}_stopping.png.",
        "",
    ]
    for target in args.targets.split(","):
        key = f"{float(target):g}"
        lines += [
            f"### Target {key}",
            "",
            "| ranker | rule | guarantee | runs | reliability | recall mean | recall min | share read | overshoot |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for ranker in rankers:
            runs = [run_rules(r) for review in reviews for r in results.get((review, ranker), [])]
            table = evaluate.aggregate_outcomes([r for r in runs if r]).get(key, {})
            for rule, o in table.items():
                lines.append(
                    f"| {ranker} | {rule} | {evaluate.guarantee_of(rule) or '-'} | {o['runs']} "
                    f"| {o['reliability']:.3f} | {o['recall_mean']:.3f} | {o['recall_min']:.3f} "
                    f"| {o['read_share']:.3f} | {o['overshoot']:.3f} |"
                )
            if table:
                lines.append(
                    f"| {ranker} | **recommended** | | | {evaluate.recommend({key: table}, float(key))} | | | | |"
                )
        lines += ["", *group_rule_table(results, reviews, key), ""]
    lines += PUBLISHED
    names = list(RULES)
    lines += [
        "Per review at target 0.95 (share read at the stop, mean over seeds; in brackets the reliability and the "
        "runs), beside the floor: the least share any random-sample certificate reads at 0.95/0.95 (all R includes "
        "first, then an audit of the rest ruling out floor(R/0.95) - R + 1 hidden includes).",
        "",
        "| review | floor | ranker | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for review in reviews:
        for ranker in rankers:
            runs = [run_rules(r).get("0.95", {}) for r in results.get((review, ranker), []) if r["rules"]]
            if not runs:
                continue
            f = results[(review, ranker)][0]["figures"]
            cells = []
            for rule in names:
                o = [r[rule] for r in runs if rule in r]
                cells.append(
                    f"{np.mean([x['read_share'] for x in o]):.3f} "
                    f"({np.mean([x['reached_target'] for x in o]):.2f}, {len(o)})"
                    if o
                    else "-"
                )
            lines.append(
                f"| {review} | {floor_read_share(f['includes'], f['records']):.3f} | {ranker} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


def default_rules(results, reviews):
    """The default ranker's rules over its runs on `reviews`: {target: {rule: figures}} (evaluate.aggregate_outcomes),
    the table the recommendation is chosen from."""
    runs = [run_rules(r) for review in reviews for r in results.get((review, DEFAULT), []) if r["rules"]]
    return evaluate.aggregate_outcomes(runs)


def write_stopping_outputs(results, args, reviews, info):
    """The reliability-against-overshoot plot per target (every ranker's runs pooled) and, when asked, the
    default ranker's figures as the JSON `screen` reads."""
    runs = [run_rules(r) for (review, _), rs in results.items() if review in reviews for r in rs]
    table = evaluate.aggregate_outcomes([r for r in runs if r])
    if table:
        outputs.plot_reliability_overshoot(Path(args.output).with_name(Path(args.output).stem + "_stopping.png"), table)
    if args.rule_reliability:
        table = default_rules(results, reviews)
        if not table:
            return
        seeds = len({r["seed"] for (review, ranker), rs in results.items() if ranker == DEFAULT for r in rs})
        measured_on = f"{len(reviews)} reviews x {seeds} seeds, ranker {DEFAULT}, commit {info['commit']}"
        for rules in table.values():
            for figures in rules.values():
                figures["measured_on"] = measured_on
        recommended = {t: evaluate.recommend(table, float(t)) or "hypergeometric" for t in table}
        outputs.write_json(
            args.rule_reliability, {"measured_on": measured_on, "recommended": recommended, "rules": table}
        )


def markdown(results, args, reviews, rankers, info, fresh=None):
    lines = [
        "# Prioritised screening: simulation on 19 reviews (the six shared reviews and 13 CLEF TAR 2017 topics)",
        "",
        f"Date {info['date']}, commit {info['commit']}, machine: {info['machine']} (shared with other jobs: wall "
        "times are upper bounds). Priors: 1 include + 1 exclude drawn by the seed (the same rows for every "
        f"ranker). `default` is the project's default ranker and batch schedule (`run_screening.py simulate` with no "
        f"flags: {RankerArguments.ranker} on '{LoopArguments.batch_size}', embeddings at 'auto' precision); other "
        f"rankers run on the '{args.batch_size}' schedule unless named NAME@SCHEDULE. ASReview: `asreview "
        "simulate` 3.0.8, default model (elas_u4), label column renamed `included`, one record per query, run in a "
        "temporary folder. The embedding rankers read each review's MiniLM embedding from --feature_cache_dir: "
        "computed once per review, left out of the time columns.",
        "",
        f"Command: `{info['command']}`",
        "",
        "## Ranking: records screened to 95% recall (n95), WSS@95, recall@10%, wall time per run",
        "",
        "| review | N | includes | ranker | runs | n95 | WSS@95 | recall@10% | wall s/run | CPU s/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    wss = {r: [] for r in rankers}
    for review in reviews:
        for ranker in rankers:
            runs = results.get((review, ranker), [])
            if not runs:
                lines.append(f"| {review} | | | {ranker} | 0 | - | - | - | - | - |")
                continue
            f = [r["figures"] for r in runs]
            wss[ranker].append(np.mean([x["wss95"] for x in f]))
            lines.append(
                f"| {review} | {f[0]['records']} | {f[0]['includes']} | {ranker} | {len(runs)} "
                f"| {mean_sd([x['n95'] for x in f], '{:.0f}')} | {mean_sd([x['wss95'] for x in f])} "
                f"| {mean_sd([x['recall_at_10'] for x in f])} | {np.mean([x['wall_time_s'] for x in f]):.1f} "
                f"| {cpu_mean([x.get('cpu_time_s') for x in f])} |"
            )
    lines += [
        "",
        "Mean WSS@95 over the reviews each ranker has: "
        + ", ".join(f"{r} {np.mean(v):.3f} ({len(v)} reviews)" for r, v in wss.items() if v)
        + ".",
        "",
    ]
    lines += against_asreview(results, rankers)
    lines += precision_check(results, reviews)
    lines += stopping_tables(results, args, reviews, rankers)
    lines += fresh_seed_check(results, fresh, reviews, args)
    missing = [
        f"{review}/{ranker}: {len(results.get((review, ranker), []))} of {args.seeds}"
        for review in reviews
        for ranker in rankers
        if len(results.get((review, ranker), [])) < args.seeds
    ]
    if missing:
        lines += ["", "Not finished (runs done of those asked): " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def fresh_seed_check(results, fresh, reviews, args):
    """The rule recommended at each target on seeds 0..S-1, measured on the default ranker's runs at seeds S and
    above (reading orders no rule was chosen on) and, beside them, on the seeds it was chosen on, per group of
    reviews, beside the rules it was chosen among."""
    if not fresh:
        return []
    seeds = sorted({r["seed"] for runs in fresh.values() for r in runs})
    seed_sets = ((f"0-{args.seeds - 1}", results), (f"{seeds[0]}-{seeds[-1]}", fresh))
    lines = [
        f"## The recommended rules on fresh seeds ({seeds[0]}-{seeds[-1]})",
        "",
        f"The recommended rule at each target was chosen on seeds 0-{args.seeds - 1}; here it runs on the default "
        "ranker's runs at seeds it was never chosen on (new priors, so new reading orders of the same 19 reviews), "
        "beside the seeds it was chosen on, per group (a rule tuned on one group is checked on the other). Cells: "
        "reliability / mean share read / mean overshoot (runs).",
        "",
    ]
    chosen_on = default_rules(results, reviews)
    for target in args.targets.split(","):
        key = f"{float(target):g}"
        recommended = evaluate.recommend(chosen_on, float(key)) or "hypergeometric"
        names = list(dict.fromkeys([recommended, "hypergeometric", "counting_process", "counting_process_agree"]))
        lines += [
            f"Target {key}, recommended: **{recommended}**",
            "",
            "| group | seeds | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for group, members in (("six", SIX), ("CLEF 13", CLEF), ("all 19", SIX + CLEF)):
            for label, source in seed_sets:
                runs = [
                    run_rules(r) for m in members if m in reviews for r in source.get((m, DEFAULT), []) if r["rules"]
                ]
                table = evaluate.aggregate_outcomes(runs).get(key, {})
                cells = [
                    f"{table[n]['reliability']:.3f} / {table[n]['read_share']:.3f} / {table[n]['overshoot']:.3f} "
                    f"({table[n]['runs']})"
                    if n in table
                    else "-"
                    for n in names
                ]
                lines.append(f"| {group} | {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def write_report(results, fresh, args, reviews, rankers, info):
    """The markdown (the fresh seeds' check included), the reliability plot and, when asked, rule_reliability.json."""
    outputs.write_text(args.output, markdown(results, args, reviews, rankers, info, fresh))
    write_stopping_outputs(results, args, reviews, info)


def split_fresh(results, seeds):
    """(runs at seeds 0..seeds-1, runs at later seeds), both keyed as `results`."""
    main, fresh = {}, {}
    for key, runs in results.items():
        for run in runs:
            (main if run["seed"] < seeds else fresh).setdefault(key, []).append(run)
    return main, fresh


def rules_from_readings(args, results):
    """Every run with a kept reading gets its stopping rules (`--rules`, or all) measured again with this code."""
    targets = tuple(float(t) for t in args.targets.split(","))
    names = args.rules.split(",") if args.rules else None
    for (review, ranker), runs in results.items():
        for run in runs:
            path = reading_path(args.readings_dir, review, ranker, run["seed"])
            if path.exists():
                measured = evaluate.rule_outcomes(load_reading(path), StoppingArguments(), targets, run["seed"], names)
                kept = run["rules"] if names else {}
                run["rules"] = {t: {**kept.get(t, {}), **outcomes} for t, outcomes in measured.items()}
                saved = {k: v for k, v in run.items() if k != "seed"}
                outputs.write_json(run_path(args, review, ranker, run["seed"]), saved)


def main():
    args = parse()
    reviews, rankers = args.reviews.split(","), args.rankers.split(",")
    info = {
        "date": datetime.date.today().isoformat(),
        "commit": commit(),
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
    }
    results_dir = Path(args.results_dir)
    results = {}
    for review in reviews:
        for ranker in rankers:
            for path in sorted(results_dir.glob(f"{review}__{file_label(ranker)}__seed*.json")):
                run = {**json.loads(path.read_text()), "seed": int(path.stem.rsplit("__seed", 1)[1])}
                results.setdefault((review, ranker), []).append(run)
    if args.rules_from_readings:
        rules_from_readings(args, results)
    results, fresh = split_fresh(results, args.seeds)
    if args.report_only or args.rules_from_readings:
        write_report(results, fresh, args, reviews, rankers, info)
        return
    data = {review: load(args.data_dir, review) for review in reviews}
    ranker_cache = {review: {} for review in reviews}
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):  # seed-major: a partial benchmark covers every review and ranker
            for review in reviews:
                frame, labels = data[review]
                for ranker in rankers:
                    path = run_path(args, review, ranker, seed)
                    if path.exists():
                        continue
                    folder = Path(work) / review
                    folder.mkdir(exist_ok=True)
                    run = one_run(args, review, ranker, seed, frame, labels, ranker_cache[review], folder)
                    outputs.write_json(path, run)
                    results.setdefault((review, ranker), []).append({**run, "seed": seed})
                    outputs.write_text(args.output, markdown(results, args, reviews, rankers, info, fresh))
                    print(
                        f"{review} {ranker} seed {seed}: n95 {run['figures']['n95']} "
                        f"wall {run['figures']['wall_time_s']:.1f}s",
                        flush=True,
                    )
    write_report(results, fresh, args, reviews, rankers, info)


if __name__ == "__main__":
    _cli.exit_on_input_error(main)
