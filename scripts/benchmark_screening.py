#!/usr/bin/env python
"""Prioritised screening benchmark: the six shared reviews, seeds 0..S-1, 1 include + 1 exclude as priors (the same
ones for every ranker), rankers tfidf_features (the default), tfidf_lr, tfidf_nb, features_lr and ASReview 3.0.8's
default (`asreview simulate`, run here; optional: `pip install .[benchmark]`). Every run's stream goes through the
same figures and stopping rules (screening.active). Each run's outcome is kept in --results_dir (a rerun skips
finished runs), and the markdown is rewritten after every run, so a partial benchmark still reports what it has.

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

from screening import outputs
from screening.active.loop import LoopArguments
from screening.active.rankers import RankerArguments, build_ranker
from screening.active.simulate import SimulationArguments, draw_priors, simulate_run, simulation_figures
from screening.active.stopping import RULES, StoppingArguments, build_rules, evaluate, floor_read_share
from screening.cli import ScriptArgumentParser
from screening.data import parse_labels, read_table

REVIEWS = (
    "van_de_Schoot_2018",
    "Appenzeller-Herzog_2020",
    "Cohen_2006_ACEInhibitors",
    "CLEF2017_CD010438",
    "Wallace_2010_ProtonBeam",
    "Wallace_2010_Micronutrients",
)
RANKERS = ("tfidf_features", "tfidf_lr", "tfidf_nb", "features_lr", "asreview")
DEFAULT = "tfidf_features"
TUNING_SEEDS = (0, 1, 2)  # the default's --features_weight was chosen on these seeds (benchmarks/screening_notes.md)


def parse():
    parser = ScriptArgumentParser(description=__doc__, formatter_class=__import__("argparse").RawTextHelpFormatter)
    parser.add_argument(
        "--data_dir",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
        help="Folder of the six review CSVs.",
    )
    parser.add_argument("--output", default="benchmarks/screening.md", help="The markdown written.")
    parser.add_argument("--results_dir", default="benchmarks/screening_runs", help="One JSON per finished run.")
    parser.add_argument("--seeds", type=int, default=10, help="Seeds 0..S-1 per review and ranker.")
    parser.add_argument("--rankers", default=",".join(RANKERS), help="Comma-separated, from: " + ", ".join(RANKERS))
    parser.add_argument("--reviews", default=",".join(REVIEWS), help="Comma-separated review file stems.")
    parser.add_argument("--asreview", default="asreview", help="The asreview 3.0.8 command.")
    parser.add_argument("--feature_cache_dir", default=None, help="Embedding cache of features_lr.")
    parser.add_argument("--batch_size", default="grow", help="Batch schedule of this project's rankers.")
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
    return parser.parse_args()


def load(data_dir, review):
    path = Path(data_dir) / f"{review}.csv"
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
    ranker_args = RankerArguments(ranker=ranker_name, feature_cache_dir=args.feature_cache_dir)
    if ranker_name not in ranker_cache:
        start = time.perf_counter()
        ranker_cache[ranker_name] = (build_ranker(frame, ranker_args), time.perf_counter() - start)
    ranker, build_time = ranker_cache[ranker_name]
    cpu = time.process_time()
    run = simulate_run(
        frame,
        labels,
        ranker_args,
        LoopArguments(batch_size=args.batch_size),
        SimulationArguments("d", "o", targets=args.targets),
        stop_args,
        seed,
        ranker,
    )
    run["figures"]["build_time_s"] = build_time
    run["figures"]["cpu_time_s"] = time.process_time() - cpu
    return {"figures": run["figures"], "rules": run["rules"]}


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


def against_asreview(results, reviews):
    """The default ranker against ASReview per review: on every seed, and on the seeds not used for tuning."""
    lines = [
        f"### {DEFAULT} against ASReview",
        "",
        f"Mean n95 per review; 'fresh seeds' leaves out seeds {', '.join(map(str, TUNING_SEEDS))}, on which "
        f"the --features_weight of {DEFAULT} was chosen.",
        "",
        f"| review | {DEFAULT} n95 | ASReview n95 | difference | {DEFAULT}, fresh seeds | ASReview, fresh seeds |",
        "|---|---|---|---|---|---|",
    ]
    tally = {"all": [0, [], []], "fresh": [0, [], []]}
    for review in reviews:
        ours, theirs = results.get((review, DEFAULT)), results.get((review, "asreview"))
        if not (ours and theirs):
            continue
        cells = []
        for name, keep in (("all", lambda run: True), ("fresh", lambda run: run["seed"] not in TUNING_SEEDS)):
            a = [r["figures"] for r in ours if keep(r)]
            b = [r["figures"] for r in theirs if keep(r)]
            if not (a and b):
                cells.append(("-", "-"))
                continue
            tally[name][0] += np.mean([x["n95"] for x in a]) <= np.mean([x["n95"] for x in b])
            tally[name][1].append(np.mean([x["wss95"] for x in a]))
            tally[name][2].append(np.mean([x["wss95"] for x in b]))
            cells.append((mean_sd([x["n95"] for x in a], "{:.0f}"), mean_sd([x["n95"] for x in b], "{:.0f}")))
        difference = np.mean([r["figures"]["n95"] for r in ours]) - np.mean([r["figures"]["n95"] for r in theirs])
        lines.append(
            f"| {review} | {cells[0][0]} | {cells[0][1]} | {difference:+.0f} | {cells[1][0]} | {cells[1][1]} |"
        )
    for name, (wins, w_ours, w_theirs) in tally.items():
        if w_ours:
            lines.append(
                f"\n{'All seeds' if name == 'all' else 'Fresh seeds'}: {DEFAULT} at or below ASReview's n95 on {wins} "
                f"of {len(w_ours)} reviews; mean WSS@95 {np.mean(w_ours):.3f} against {np.mean(w_theirs):.3f}."
            )
    return lines + [""]


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
        "screening/active/stopping/). Recommended: reliability >= 0.95 at the least overshoot. Rules that read the "
        "ranker's scores are evaluated at the loop's retrain points; they are not run on ASReview's stream. "
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
                    f"| {ranker} | {rule} | {RULES[rule].guarantee if rule in RULES else '-'} | {o['runs']} "
                    f"| {o['reliability']:.3f} | {o['recall_mean']:.3f} | {o['recall_min']:.3f} "
                    f"| {o['read_share']:.3f} | {o['overshoot']:.3f} |"
                )
            if table:
                lines.append(
                    f"| {ranker} | **recommended** | | | {evaluate.recommend({key: table}, float(key))} | | | | |"
                )
        lines.append("")
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


def write_stopping_outputs(results, args, reviews):
    """The reliability-against-overshoot plot per target (every ranker's runs pooled) and, when asked, the
    default ranker's figures as the JSON `screen` reads."""
    runs = [run_rules(r) for (review, _), rs in results.items() if review in reviews for r in rs]
    table = evaluate.aggregate_outcomes([r for r in runs if r])
    if table:
        outputs.plot_reliability_overshoot(Path(args.output).with_name(Path(args.output).stem + "_stopping.png"), table)
    if args.rule_reliability:
        default = [run_rules(r) for (review, ranker), rs in results.items() if ranker == DEFAULT and review in reviews
                   for r in rs]  # fmt: skip
        table = evaluate.aggregate_outcomes([r for r in default if r])
        if not table:
            return
        seeds = len({r["seed"] for (review, ranker), rs in results.items() if ranker == DEFAULT for r in rs})
        measured_on = f"{len(reviews)} reviews x {seeds} seeds, ranker {DEFAULT}, commit {commit()}"
        for rules in table.values():
            for figures in rules.values():
                figures["measured_on"] = measured_on
        recommended = {t: evaluate.recommend(table, float(t)) or "hypergeometric" for t in table}
        outputs.write_json(
            args.rule_reliability, {"measured_on": measured_on, "recommended": recommended, "rules": table}
        )


def markdown(results, args, reviews, rankers, info):
    lines = [
        "# Prioritised screening: simulation on the six shared reviews",
        "",
        f"Date {info['date']}, commit {info['commit']}, machine: {info['machine']} (shared with other jobs: wall "
        "times are upper bounds). Priors: 1 include + 1 exclude drawn by the seed (the same rows for every "
        f"ranker). This project's rankers use the '{args.batch_size}' batch schedule. ASReview: `asreview "
        "simulate` 3.0.8, default model (elas_u4), label column renamed `included`, one record per query. "
        "tfidf_features and features_lr read each review's MiniLM embedding from --feature_cache_dir: computed "
        "once per review, left out of the time columns (its cost: screening_notes.md).",
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
    if any(results.get((review, DEFAULT)) and results.get((review, "asreview")) for review in reviews):
        lines += against_asreview(results, reviews)  # the default against ASReview: all seeds and fresh seeds
    lines += stopping_tables(results, args, reviews, rankers)
    missing = [
        f"{review}/{ranker}: {len(results.get((review, ranker), []))} of {args.seeds}"
        for review in reviews
        for ranker in rankers
        if len(results.get((review, ranker), [])) < args.seeds
    ]
    if missing:
        lines += ["", "Not finished (runs done of those asked): " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


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
            for path in sorted(results_dir.glob(f"{review}__{ranker}__seed*.json")):
                run = {**json.loads(path.read_text()), "seed": int(path.stem.rsplit("__seed", 1)[1])}
                results.setdefault((review, ranker), []).append(run)
    if args.report_only:
        outputs.write_text(args.output, markdown(results, args, reviews, rankers, info))
        write_stopping_outputs(results, args, reviews)
        return
    data = {review: load(args.data_dir, review) for review in reviews}
    ranker_cache = {review: {} for review in reviews}
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):  # seed-major: a partial benchmark covers every review and ranker
            for review in reviews:
                frame, labels = data[review]
                for ranker in rankers:
                    path = results_dir / f"{review}__{ranker}__seed{seed}.json"
                    if path.exists():
                        continue
                    folder = Path(work) / review
                    folder.mkdir(exist_ok=True)
                    run = one_run(args, review, ranker, seed, frame, labels, ranker_cache[review], folder)
                    outputs.write_json(path, run)
                    results.setdefault((review, ranker), []).append({**run, "seed": seed})
                    outputs.write_text(args.output, markdown(results, args, reviews, rankers, info))
                    print(
                        f"{review} {ranker} seed {seed}: n95 {run['figures']['n95']} "
                        f"wall {run['figures']['wall_time_s']:.1f}s",
                        flush=True,
                    )
    outputs.write_text(args.output, markdown(results, args, reviews, rankers, info))
    write_stopping_outputs(results, args, reviews)


if __name__ == "__main__":
    _cli.exit_on_input_error(main)
