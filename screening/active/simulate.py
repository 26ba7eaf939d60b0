"""Prioritised screening simulated on a fully labelled review: priors, then the ranker's batches labelled from the
known judgements until every include is found (or a budget of records is read); the figures of design.md
("Prioritised screening (simulation)") and each stopping rule's point, recall and certificate."""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .. import outputs
from ..errors import ScreeningInputError
from . import stopping
from .loop import batch_size, simulate_loop
from .rankers import build_ranker


@dataclass
class SimulationArguments:
    """The labelled review to simulate on, the priors and the repeats."""

    data_file: str = field(metadata={"help": "A labelled review (id, title, abstract, judgement; any reader format)."})
    output_dir: str = field(
        metadata={"help": "Where screening_order.csv, simulation_results.json, recall_curve.png, summary.md go."}
    )
    label_column: str = field(default="judgement", metadata={"help": "Column of 0/1 labels (1 = include)."})
    id_column: str = field(default="id", metadata={"help": "Column of record ids (made when absent)."})
    prior_includes: int = field(default=1, metadata={"help": "Includes drawn at random (by seed) as priors."})
    prior_excludes: int = field(default=1, metadata={"help": "Excludes drawn at random (by seed) as priors."})
    prior_ids: str | None = field(
        default=None, metadata={"help": "Comma-separated ids to use as priors instead of drawn ones (one run)."}
    )
    budget: int | None = field(default=None, metadata={"help": "Stop after this many records (default: all)."})
    runs: int = field(default=1, metadata={"help": "Repeats with seeds seed, seed+1, ...; mean and sd reported."})
    targets: str = field(
        default="0.8,0.9,0.95",
        metadata={"help": "Target recalls at which every stopping rule is measured (with --target_recall)."},
    )

    def check(self):
        if self.prior_includes < 1 or self.prior_excludes < 1:
            raise ScreeningInputError("--prior_includes and --prior_excludes must be at least 1")
        if self.runs < 1:
            raise ScreeningInputError(f"--runs must be at least 1; got {self.runs}")
        if self.prior_ids and self.runs > 1:
            raise ScreeningInputError("--prior_ids fixes the priors: use --runs 1")
        try:
            values = [float(t) for t in self.targets.split(",") if t.strip()]
        except ValueError:
            values = [0.0]
        if not all(0 < t < 1 for t in values):
            raise ScreeningInputError(f"--targets must be comma-separated recalls in (0, 1); got {self.targets!r}")
        return self


def draw_priors(labels, includes, excludes, rng):
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if includes > positives.size or excludes > negatives.size:
        raise ScreeningInputError(
            f"--prior_includes/--prior_excludes: the data has {positives.size} includes and {negatives.size} excludes"
        )
    return np.concatenate([rng.choice(positives, includes, replace=False), rng.choice(negatives, excludes, False)])


def complete_reading(labels, loop, loop_args):
    """The `SimulatedReading` of a loop that found every include: its order, then the unread rows ranked by the last
    scores (all excludes); its retrains, then retrain points going on with the batch schedule with the last scores
    kept (the loop stops retraining once every include is found)."""
    order = loop.order
    read = np.zeros(labels.size, dtype=bool)
    read[order] = True
    rest = np.flatnonzero(~read)
    last = loop.retrains[-1][1] if loop.retrains else None
    if last is not None:
        rest = rest[np.lexsort((rest, -last[rest]))]
    full = np.concatenate([order, rest]).astype(np.int64)
    retrains = list(loop.retrains)
    point, round_index = order.size, len(loop.retrains)
    while last is not None and point < labels.size:
        retrains.append((point, last))
        point += batch_size(loop_args.batch_size, round_index, point)
        round_index += 1
    return stopping.evaluate.SimulatedReading(labels[full], full, retrains)


def simulation_figures(found_labels, records, includes=None):
    """n95, WSS@95, recall@10% and ATD (design.md) from the labels in reading order (`records`: N; `includes`: K,
    default every include is in `found_labels`). A run cut short of K includes must still reach ceil(0.95 K) and
    ceil(0.1 N) records; its ATD is then over the includes found (`atd_complete` False)."""
    found_labels = np.asarray(found_labels, dtype=np.int64)
    total = int(found_labels.sum()) if includes is None else int(includes)
    cumulative = np.cumsum(found_labels)
    reached = cumulative >= math.ceil(0.95 * total)
    n95 = int(np.argmax(reached)) + 1 if reached.any() else int(records)  # not reached: counted as reading all
    at10 = math.ceil(0.1 * records)
    positions = np.flatnonzero(found_labels) + 1
    return {
        "records": int(records),
        "includes": total,
        "n95": n95,
        "wss95": (records - n95) / records - 0.05,
        "recall_at_10": float(cumulative[min(at10, cumulative.size) - 1] / total),
        "atd": float(positions.mean() / records),
        "atd_complete": bool(cumulative[-1] == total),
    }


def simulate_run(frame, labels, ranker_args, loop_args, sim_args, stop_args, seed, ranker=None):
    """One run with `seed`: its screening order (rows, scores, rounds), figures and stopping-rule outcomes.
    `ranker`: a ranker built before (its features are reused across runs)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    if sim_args.prior_ids:
        wanted = [i.strip() for i in sim_args.prior_ids.split(",") if i.strip()]
        lookup = {str(i): n for n, i in enumerate(frame["id"])}
        unknown = [i for i in wanted if i not in lookup]
        if unknown:
            raise ScreeningInputError(f"--prior_ids: {', '.join(unknown[:5])} not in {sim_args.data_file}")
        priors = np.asarray([lookup[i] for i in wanted])
    else:
        priors = draw_priors(labels, sim_args.prior_includes, sim_args.prior_excludes, rng)
    ranker = ranker or build_ranker(frame, ranker_args, seed)
    loop = simulate_loop(ranker, labels, priors, loop_args, seed, sim_args.budget)
    wall = time.perf_counter() - start
    records, includes = labels.size, int(labels.sum())
    complete = int(labels[loop.order].sum()) == includes
    reading = complete_reading(labels, loop, loop_args) if complete else None
    figures = simulation_figures(reading.labels, records) if complete else {"records": records, "includes": includes}
    figures.update(seed=seed, wall_time_s=wall, retrains=int(loop.rounds.max()), records_screened=int(loop.order.size))
    outcomes = {}
    if complete:
        start = time.perf_counter()
        outcomes = stopping.evaluate.rule_outcomes(reading, stop_args, targets(sim_args, stop_args), seed)
        figures["rules_time_s"] = time.perf_counter() - start
    return {
        "order": loop.order,
        "scores": loop.scores,
        "rounds": loop.rounds,
        "figures": figures,
        "rules": outcomes,
        "reading": reading,
    }


def targets(sim_args, stop_args):
    """The target recalls the rules are measured at: --targets and --target_recall."""
    values = {float(t) for t in sim_args.targets.split(",") if t.strip()} | {stop_args.target_recall}
    return tuple(sorted(values))


FIGURES = ("n95", "wss95", "recall_at_10", "atd", "wall_time_s", "retrains")


def aggregate(runs, stop_args):
    """Mean and sd (ddof 1; 0 for one run) of each figure over runs, and per target and stopping rule
    (`stopping.evaluate.aggregate_outcomes`): reliability, mean and min recall at the stop, mean share read, mean
    overshoot past the oracle's stop; the rule recommended at each target (`stopping.evaluate.recommend`)."""

    def stats(values):
        values = np.asarray(values, dtype=np.float64)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0}

    complete = [r for r in runs if r["rules"]]
    out = {name: stats([r["figures"][name] for r in complete]) for name in FIGURES if complete}
    out["runs"] = len(runs)
    out["complete_runs"] = len(complete)
    out["rules"] = stopping.evaluate.aggregate_outcomes([r["rules"] for r in complete])
    out["recommended"] = {target: stopping.evaluate.recommend(out["rules"], float(target)) for target in out["rules"]}
    if complete:
        first = complete[0]["figures"]
        out["floor_read_share"] = {
            target: stopping.floor_read_share(first["includes"], first["records"], float(target), stop_args.confidence)
            for target in out["rules"]
        }
    return out


def none_recommended(runs):
    """Why no rule is recommended after `runs` runs (`stopping.evaluate.recommend` asks the low end of a rule's 95%
    interval to reach 0.95: with fewer than 72 runs, not even a rule reaching the target in every run does)."""
    low = stopping.evaluate.reliability_interval(runs, runs)[0]
    if low >= 0.95:
        return "none reached the target in 95% of runs at the low end of its 95% interval"
    return (
        f"none: a rule reaching the target in all {runs} runs has a 95% interval down to {low:.2f}; 72 runs can "
        "show 0.95"
    )


def simulation_summary(results, title, command):
    agg = results["aggregate"]
    lines = [f"# {title}", "", f"{agg['runs']} run(s), {agg['complete_runs']} read every include.", ""]
    if agg["complete_runs"]:
        lines += ["| figure | mean | sd |", "|---|---|---|"]
        lines += [f"| {name} | {agg[name]['mean']:.4g} | {agg[name]['sd']:.3g} |" for name in FIGURES]
        for target, rules in agg["rules"].items():
            lines += [
                "",
                f"Stopping rules at target {target}, confidence {results['confidence']:g} (floor of any random-sample "
                f"certificate: {agg['floor_read_share'][target]:.3f} of the records read; recommended: "
                f"{agg['recommended'][target] or none_recommended(agg['complete_runs'])}):",
                "",
                "| rule | guarantee | reliability | recall mean | recall min | share read | overshoot |",
                "|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {rule} | {stopping.evaluate.guarantee_of(rule)} | {o['reliability']:.2f} | {o['recall_mean']:.3f} "
                f"| {o['recall_min']:.3f} | {o['read_share']:.3f} | {o['overshoot']:.3f} |"
                for rule, o in rules.items()
            ]
    lines += ["", "![recall curve](recall_curve.png)", "", "Command:", "", "```", command, "```", ""]
    return "\n".join(lines)


def run_simulation(frame, labels, ranker_args, loop_args, sim_args, stop_args, command="", progress=True):
    """`sim_args.runs` simulated screenings (seeds loop_args.seed, +1, ...) written to `sim_args.output_dir`:
    screening_order.csv, simulation_results.json, recall_curve.png and summary.md. Returns the results."""
    import pandas as pd
    from tqdm.auto import tqdm

    shared = None if ranker_args.ranker == "finetune" else build_ranker(frame, ranker_args)  # seed-free features
    runs, orders = [], []
    for seed in tqdm(range(loop_args.seed, loop_args.seed + sim_args.runs), desc="runs", disable=not progress):
        run = simulate_run(frame, labels, ranker_args, loop_args, sim_args, stop_args, seed, shared)
        runs.append(run)
        orders.append(
            pd.DataFrame(
                {
                    "seed": seed,
                    "step": np.arange(1, run["order"].size + 1),
                    "id": frame["id"].to_numpy()[run["order"]],
                    "label": labels[run["order"]],
                    "score": run["scores"],
                    "round": run["rounds"],
                }
            )
        )
    results = {
        "data_file": sim_args.data_file,
        "ranker": ranker_args.ranker,
        "batch_size": loop_args.batch_size,
        "target_recall": stop_args.target_recall,
        "confidence": stop_args.confidence,
        "targets": list(targets(sim_args, stop_args)),
        "runs": [{"figures": r["figures"], "rules": r["rules"]} for r in runs],
        "aggregate": aggregate(runs, stop_args),
        "command": command,
    }
    out = sim_args.output_dir
    outputs.write_screening_order(out, pd.concat(orders, ignore_index=True))
    first = runs[0]
    at_target = first["rules"].get(f"{stop_args.target_recall:g}", {})
    stops = {rule: o["stop"] for rule, o in at_target.items() if o["stopped"]}
    outputs.plot_recall_curve(
        out,
        [labels[r["order"]] for r in runs],
        labels.size,
        stops,
        title=f"{ranker_args.ranker}, {len(runs)} run(s); stops of seed {loop_args.seed}",
    )
    outputs.write_simulation_results(out, results)
    outputs.write_summary(out, simulation_summary(results, f"Simulated screening: {sim_args.data_file}", command))
    return results
