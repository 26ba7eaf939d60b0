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
from .loop import batch_size, choose_batch
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
    hypergeometric_stride: int = field(
        default=25, metadata={"help": "Test the hypergeometric rule every this many records, then refine."}
    )

    def check(self):
        if self.prior_includes < 1 or self.prior_excludes < 1:
            raise ScreeningInputError("--prior_includes and --prior_excludes must be at least 1")
        if self.runs < 1:
            raise ScreeningInputError(f"--runs must be at least 1; got {self.runs}")
        if self.prior_ids and self.runs > 1:
            raise ScreeningInputError("--prior_ids fixes the priors: use --runs 1")
        return self


def draw_priors(labels, includes, excludes, rng):
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if includes > positives.size or excludes > negatives.size:
        raise ScreeningInputError(
            f"--prior_includes/--prior_excludes: the data has {positives.size} includes and {negatives.size} excludes"
        )
    return np.concatenate([rng.choice(positives, includes, replace=False), rng.choice(negatives, excludes, False)])


def screen_simulated(ranker, labels, priors, loop_args, seed, budget=None):
    """One simulated screening: the priors, then batches from `ranker` until every include is found, the
    records run out or `budget` records are read. Returns the rows in reading order, the score each had when
    chosen (nan for priors) and the model round that chose it (0 for priors)."""
    rng = np.random.default_rng(seed + 1_000_003)
    order, scores, rounds = list(priors), [np.nan] * len(priors), [0] * len(priors)
    read = np.zeros(labels.size, dtype=bool)
    read[priors] = True
    total, found = int(labels.sum()), int(labels[priors].sum())
    limit = min(budget or labels.size, labels.size)
    round_index = 0
    while found < total and len(order) < limit:
        rows = np.asarray(order)
        all_scores = ranker.fit_score(rows, labels[rows])
        size = min(batch_size(loop_args.batch_size, round_index), limit - len(order))
        batch = choose_batch(all_scores, np.flatnonzero(~read), size, loop_args.random_share, rng)
        round_index += 1
        read[batch] = True
        order += batch.tolist()
        scores += all_scores[batch].tolist()
        rounds += [round_index] * batch.size
        found += int(labels[batch].sum())
    return np.asarray(order), np.asarray(scores), np.asarray(rounds)


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


def rule_outcomes(stream, includes, records, n95, stop_args, seed, stride=25):
    """Each stopping rule on the screened stream (labels in reading order, padded with the unread records'
    labels: all excludes once every include is found): where it stops, the recall reached, whether it reached
    the target, the reading past the ideal point (n95) and, at the stop, its certificate."""
    stream = np.asarray(stream, dtype=np.int64)
    target, confidence = stop_args.target_recall, stop_args.confidence
    points = {
        "hypergeometric": stopping.hypergeometric_stop(stream, records, target, confidence, stride),
        "consecutive_excludes": stopping.consecutive_excludes_stop(stream, stop_args.consecutive_excludes),
        "read_share": math.ceil(stop_args.read_share * records),
    }
    outcomes = {}
    for rule, point in points.items():
        point = records if point is None else point
        found = int(stream[:point].sum())
        outcomes[rule] = {
            "stop": point,
            "found": found,
            **stopping.frontier(stream[:point], records, target, confidence),
        }
    audit = stopping.audit_stop(stream, target, confidence, stop_args.audit_after, seed)
    if audit is None:
        outcomes["audit"] = {
            "stop": records,
            "found": includes,
            "recall_bound": 1.0,
            "expected_missed": 0.0,
            "expected_missed_low": 0.0,
            "expected_missed_high": 0.0,
        }
    else:
        read, found, certificate = audit
        outcomes["audit"] = {"stop": read, "found": found, **certificate}
    for outcome in outcomes.values():
        outcome["recall"] = outcome["found"] / includes
        outcome["read_share"] = outcome["stop"] / records
        outcome["reached_target"] = bool(outcome["recall"] >= target)
        outcome["overshoot"] = (outcome["stop"] - n95) / records
    return outcomes


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
    order, scores, rounds = screen_simulated(ranker, labels, priors, loop_args, seed, sim_args.budget)
    wall = time.perf_counter() - start
    records, includes = labels.size, int(labels.sum())
    complete = int(labels[order].sum()) == includes
    stream = np.concatenate([labels[order], np.zeros(records - order.size, dtype=np.int64)]) if complete else None
    figures = simulation_figures(stream, records) if complete else {"records": records, "includes": includes}
    figures.update(seed=seed, wall_time_s=wall, retrains=int(rounds.max()), records_screened=int(order.size))
    outcomes = {}
    if complete:
        outcomes = rule_outcomes(
            stream, includes, records, figures["n95"], stop_args, seed, sim_args.hypergeometric_stride
        )
    return {"order": order, "scores": scores, "rounds": rounds, "figures": figures, "rules": outcomes}


FIGURES = ("n95", "wss95", "recall_at_10", "atd", "wall_time_s", "retrains")


def aggregate(runs, stop_args):
    """Mean and sd (ddof 1; 0 for one run) of each figure over runs, and per stopping rule: mean share read, mean
    and min recall at stop, share of runs reaching the target, mean overshoot past the ideal point."""

    def stats(values):
        values = np.asarray(values, dtype=np.float64)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0}

    complete = [r for r in runs if r["rules"]]
    out = {name: stats([r["figures"][name] for r in complete]) for name in FIGURES if complete}
    out["runs"] = len(runs)
    out["complete_runs"] = len(complete)
    out["rules"] = {}
    for rule in stopping.RULES:
        outcomes = [r["rules"][rule] for r in complete]
        if not outcomes:
            continue
        out["rules"][rule] = {
            "read_share": float(np.mean([o["read_share"] for o in outcomes])),
            "recall_mean": float(np.mean([o["recall"] for o in outcomes])),
            "recall_min": float(np.min([o["recall"] for o in outcomes])),
            "reached_target": float(np.mean([o["reached_target"] for o in outcomes])),
            "overshoot": float(np.mean([o["overshoot"] for o in outcomes])),
            "recall_bound": float(np.mean([o["recall_bound"] for o in outcomes])),
        }
    if complete:
        first = complete[0]["figures"]
        out["floor_read_share"] = stopping.floor_read_share(
            first["includes"], first["records"], stop_args.target_recall, stop_args.confidence
        )
    return out


def simulation_summary(results, title, command):
    agg = results["aggregate"]
    lines = [f"# {title}", "", f"{agg['runs']} run(s), {agg['complete_runs']} read every include.", ""]
    if agg["complete_runs"]:
        lines += ["| figure | mean | sd |", "|---|---|---|"]
        lines += [f"| {name} | {agg[name]['mean']:.4g} | {agg[name]['sd']:.3g} |" for name in FIGURES]
        lines += [
            "",
            f"Stopping rules at target {results['target_recall']:g}, confidence {results['confidence']:g} "
            f"(floor of any random-sample certificate: {agg['floor_read_share']:.3f} of the records read):",
            "",
            "| rule | share read | recall mean | recall min | reached target | past ideal | recall bound |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {rule} | {o['read_share']:.3f} | {o['recall_mean']:.3f} | {o['recall_min']:.3f} "
            f"| {o['reached_target']:.2f} | {o['overshoot']:.3f} | {o['recall_bound']:.3f} |"
            for rule, o in agg["rules"].items()
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
        "runs": [{"figures": r["figures"], "rules": r["rules"]} for r in runs],
        "aggregate": aggregate(runs, stop_args),
        "command": command,
    }
    out = sim_args.output_dir
    outputs.write_screening_order(out, pd.concat(orders, ignore_index=True))
    first = runs[0]
    stops = {rule: o["stop"] for rule, o in first["rules"].items()}
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
