#!/usr/bin/env python
"""How far the counting process is from a bar: its reliability against its mean overshoot at one target recall
(default 0.9), swept over its confidence, its rate (the better of hyperbolic and exponential, or exponential alone)
and the target it runs at (the one asked, or a stricter one), with the counting process + classifier, the two
agreeing, the steady counting process and the hypergeometric rule swept over their confidence beside it. Every
variant is asked where a review asks the rules (`StoppingRule.first_stop`). Runs on the readings
`scripts/benchmark_screening.py --readings_dir` kept (the default ranker's runs, seeds 0..S-1); no ranker runs.
Writes a markdown table, the curves (PNG) and, for the variant of least overshoot among those reaching the target
in >= 95% of the runs, what each review adds to its mean overshoot.

    python scripts/stopping_frontier.py --readings_dir readings --seeds 10
"""

import datetime
import math
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_screening import SIX, add_bar_arguments, commit, kept_readings, load_reading, machine, readings_parser  # noqa: E402

from screening import outputs  # noqa: E402
from screening.active.stopping import RULES, evaluate  # noqa: E402
from screening.errors import exit_on_input_error  # noqa: E402

CONFIDENCES = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)
RATES = ("best", "exponential")
OTHERS = ("counting_process_classifier", "counting_process_agree", "counting_process_steady")  # at their defaults
OTHER_CONFIDENCES = (0.5, 0.8, 0.95, 0.99)


def parse(argv=None):
    parser = readings_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="Seeds 0..S-1 of the default ranker's readings.")
    parser.add_argument("--target", type=float, default=0.9, help="The target recall the variants are judged at.")
    parser.add_argument("--stricter", type=float, default=0.95, help="The stricter target a variant may run at.")
    add_bar_arguments(parser)
    parser.add_argument("--output", default="benchmarks/stopping_frontier.md", help="The markdown written.")
    return parser.parse_args(argv)


def variants(target, stricter):
    """{label: (the curve it lies on, the rule)}: each curve one rule, rate and target run at, over its confidence."""
    out = {}
    for runs_at in (target, stricter):
        for rate in RATES:
            for confidence in CONFIDENCES:
                curve = f"counting_process rate={rate} at {runs_at:g}"
                out[f"counting_process rate={rate} confidence={confidence:g} at {runs_at:g}"] = (
                    curve,
                    RULES["counting_process"](runs_at, confidence, rate=rate),
                )
        for name in OTHERS:
            for confidence in OTHER_CONFIDENCES:
                out[f"{name} confidence={confidence:g} at {runs_at:g}"] = (
                    f"{name} at {runs_at:g}",
                    RULES[name](runs_at, confidence),
                )
        for confidence in (0.5, 0.8, 0.95):
            out[f"hypergeometric confidence={confidence:g} at {runs_at:g}"] = (
                f"hypergeometric at {runs_at:g}",
                RULES["hypergeometric"](runs_at, confidence),
            )
    return out


def measure(readings, target, stricter):
    """{label: (curve, [(review, outcome at `target`)] per run)}."""
    results = {}
    for label, (curve, rule) in variants(target, stricter).items():
        rows = [(review, evaluate.outcome(rule.first_stop(reading), reading, target, rule.guarantee))
                for review, reading in readings]  # fmt: skip
        results[label] = curve, rows
        figures = pooled(rows, target)
        print(f"{label}: {figures['reliability']:.3f} / {figures['overshoot']:.3f}", flush=True)
    return results


def pooled(rows, target):
    """Reliability, recall, share read and overshoot over `rows` (`evaluate.aggregate_outcomes`)."""
    key = f"{target:g}"
    return evaluate.aggregate_outcomes([{key: {"rule": o}} for _, o in rows])[key]["rule"]


def plot(path, results, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.4))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 12 curves
    ax.add_patch(
        plt.Rectangle((-1, args.bar_reliability), args.bar_overshoot + 1, 1, color="green", alpha=0.12, label="the bar")
    )
    curves = {}
    for curve, rows in results.values():
        figures = pooled(rows, args.target)
        curves.setdefault(curve, []).append((figures["overshoot"], figures["reliability"]))
    for curve, points in curves.items():
        x, y = zip(*sorted(points))
        ax.plot(x, y, marker="o", label=curve)
    ax.set(
        xlabel="mean overshoot (n_stop - n_target) / N",
        ylabel=f"reliability (share of runs reaching {args.target:g})",
        xlim=(0, 0.8),
        ylim=(0.4, 1.02),
        title=f"target {args.target:g}: each curve over the confidence (low at left)",
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with outputs.atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def short_runs(results, figures, args, runs):
    """Markdown lines: for each variant within the overshoot bar, its runs short of the target by review, beside
    the most the reliability bar allows."""
    allowed = math.floor((1 - args.bar_reliability) * runs + 1e-9)
    lines = [
        "",
        f"The variants within the overshoot bar ({args.bar_overshoot:g}) and the runs they stopped short of "
        f"{args.target:g} in; the reliability bar allows {allowed} of {runs}:",
        "",
        "| variant | overshoot | runs short | where (runs short) |",
        "|---|---|---|---|",
    ]
    for label, f in figures.items():
        if f["overshoot"] <= args.bar_overshoot:
            short = Counter(review for review, o in results[label][1] if not o["reached_target"])
            where = ", ".join(f"{review} ({count})" for review, count in short.most_common())
            lines.append(f"| {label} | {f['overshoot']:.3f} | {sum(short.values())} | {where} |")
    return lines


def markdown(results, args, readings):
    image = Path(args.output).with_suffix(".png").name
    lines = [
        f"# Stopping at target {args.target:g}: how far the counting process is from the bar",
        "",
        f"Date {datetime.date.today().isoformat()}, commit {commit()}, machine: {machine()}. The default ranker's "
        f"kept readings, 19 reviews x seeds 0-{args.seeds - 1} ({len(readings)} runs); each variant judged at recall "
        f"{args.target:g}: reliability (share of runs reaching it), mean overshoot (n_stop - n_target)/N, mean share "
        f"read. The bar: reliability >= {args.bar_reliability:g} with mean overshoot <= {args.bar_overshoot:g}. "
        f"`at {args.stricter:g}`: the rule runs at the stricter target. Curves: {image}.",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        "| variant | reliability | overshoot | share read | meets the bar |",
        "|---|---|---|---|---|",
    ]
    figures = {label: pooled(rows, args.target) for label, (_, rows) in results.items()}
    for label, f in figures.items():
        meets = f["reliability"] >= args.bar_reliability and f["overshoot"] <= args.bar_overshoot
        lines.append(
            f"| {label} | {f['reliability']:.3f} | {f['overshoot']:.3f} | {f['read_share']:.3f} "
            f"| {'yes' if meets else 'no'} |"
        )
    lines += short_runs(results, figures, args, len(readings))
    best = evaluate.recommend({f"{args.target:g}": figures}, args.target, args.bar_reliability, sure=False)
    if best:
        rows = results[best][1]
        lines += [
            "",
            f"The reliable variant (>= {args.bar_reliability:g}) of least overshoot: **{best}** "
            f"({figures[best]['reliability']:.3f} / {figures[best]['overshoot']:.3f}). What each review adds to its "
            "mean overshoot (its runs' overshoot / all runs), with its size:",
            "",
            f"| review | group | records | includes | reliability | mean overshoot | adds to the mean "
            f"({figures[best]['overshoot']:.3f}) |",
            "|---|---|---|---|---|---|---|",
        ]
        sizes = {review: (reading.records, int(reading.labels.sum())) for review, reading in readings}
        for review in dict.fromkeys(review for review, _ in rows):
            mine = [(r, o) for r, o in rows if r == review]
            f = pooled(mine, args.target)
            lines.append(
                f"| {review} | {'six' if review in SIX else 'CLEF'} | {sizes[review][0]} | {sizes[review][1]} "
                f"| {f['reliability']:.2f} | {f['overshoot']:.3f} | {f['overshoot'] * len(mine) / len(rows):.3f} |"
            )
    return "\n".join(lines) + "\n"


def main():
    args = parse()
    readings = [(review, load_reading(path)) for review, _, path in kept_readings(args.readings_dir, range(args.seeds))]
    if not readings:
        raise SystemExit(f"error: --readings_dir {args.readings_dir} holds no default-ranker reading")
    results = measure(readings, args.target, args.stricter)
    plot(Path(args.output).with_suffix(".png"), results, args)
    outputs.write_text(args.output, markdown(results, args, readings))
    print(f"wrote {args.output} and {Path(args.output).with_suffix('.png')}")


if __name__ == "__main__":
    exit_on_input_error(main)
