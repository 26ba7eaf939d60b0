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
from screening.active.simulate import SimulationArguments, draw_priors, rule_outcomes, simulate_run, simulation_figures
from screening.active.stopping import RULES, StoppingArguments, consecutive_excludes_stop, floor_read_share
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


def one_run(args, review, ranker_name, seed, frame, labels, ranker_cache, work):
    stop_args = StoppingArguments()
    if ranker_name == "asreview":
        priors = draw_priors(labels, 1, 1, np.random.default_rng(seed)).tolist()
        order, wall, cpu_time = asreview_stream(args, frame, labels, priors, seed, work)
        includes = int(labels.sum())
        complete = int(labels[order].sum()) == includes
        stream = np.concatenate([labels[order], np.zeros(labels.size - order.size, dtype=np.int64)])
        figures = simulation_figures(labels[order], labels.size, includes)
        figures.update(seed=seed, wall_time_s=wall, cpu_time_s=cpu_time, records_screened=int(order.size))
        rules = rule_outcomes(stream, includes, labels.size, figures["n95"], stop_args, seed) if complete else {}
        if not complete:  # the heuristic stops before the budget; only it can be judged on a cut stream
            point = consecutive_excludes_stop(labels[order], stop_args.consecutive_excludes) or order.size
            found = int(labels[order][:point].sum())
            rules["consecutive_excludes"] = {
                "stop": point,
                "recall": found / includes,
                "read_share": point / labels.size,
                "reached_target": found / includes >= stop_args.target_recall,
                "overshoot": (point - figures["n95"]) / labels.size,
            }
        return {"figures": figures, "rules": rules}
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
        SimulationArguments("d", "o"),
        stop_args,
        seed,
        ranker,
    )
    run["figures"]["build_time_s"] = build_time
    run["figures"]["cpu_time_s"] = time.process_time() - cpu
    return {"figures": run["figures"], "rules": run["rules"]}


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
    lines += [
        "## Stopping rules at target recall 0.95, confidence 0.95",
        "",
        "Per rule and ranker, pooled over reviews and seeds: mean share of the records read at the stop, mean and "
        "min recall at the stop, share of runs that reached 0.95, mean reading past the ideal point ((n_stop - "
        "n95)/N). hypergeometric and audit are certified (their assumptions: screening/active/stopping.py); "
        "consecutive_excludes (50 in a row) and read_share (50%) are the heuristics, shown for their shortfalls.",
        "",
        "| ranker | rule | runs | share read | recall mean | recall min | reached 0.95 | past ideal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ranker in rankers:
        runs = [r for review in reviews for r in results.get((review, ranker), [])]
        for rule in RULES:
            o = [r["rules"][rule] for r in runs if rule in r["rules"]]
            if o:
                lines.append(
                    f"| {ranker} | {rule} | {len(o)} | {np.mean([x['read_share'] for x in o]):.3f} "
                    f"| {np.mean([x['recall'] for x in o]):.3f} | {np.min([x['recall'] for x in o]):.3f} "
                    f"| {np.mean([x['reached_target'] for x in o]):.3f} | {np.mean([x['overshoot'] for x in o]):.3f} |"
                )
    lines += [
        "",
        "Per review (share read at the stop, mean over seeds; in brackets the share that reached 0.95 and "
        "the runs), beside the floor: "
        "the least share any random-sample certificate reads at 0.95/0.95 (all R includes first, then an audit "
        "of the rest ruling out floor(R/0.95) - R + 1 hidden includes).",
        "",
        "| review | floor | ranker | " + " | ".join(RULES) + " |",
        "|---|---|---|" + "---|" * len(RULES),
    ]
    for review in reviews:
        for ranker in rankers:
            runs = [r for r in results.get((review, ranker), []) if r["rules"]]
            if not runs:
                continue
            f = runs[0]["figures"]
            floor = floor_read_share(f["includes"], f["records"])
            cells = []
            for rule in RULES:
                o = [r["rules"][rule] for r in runs if rule in r["rules"]]
                cells.append(
                    f"{np.mean([x['read_share'] for x in o]):.3f} "
                    f"({np.mean([x['reached_target'] for x in o]):.2f}, {len(o)})"
                    if o
                    else "-"
                )
            lines.append(f"| {review} | {floor:.3f} | {ranker} | " + " | ".join(cells) + " |")
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


if __name__ == "__main__":
    _cli.exit_on_input_error(main)
