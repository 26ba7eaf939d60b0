#!/usr/bin/env python
"""Compare one pipeline's K-fold runs between two or more benchmark results folders, review by review.

Each folder is laid out as benchmark_quality.py writes it (`<results_dir>/<review>/<pipeline>/kfold_results.json`
and `benchmark.json`). The table gives honest OOF F-beta, pooled OOF ROC AUC, mean per-fold ROC AUC and wall time,
a mean row, and each folder's difference from the first. Example (what --attention_dropout 0 does to quality):

    python scripts/benchmark_quality.py --stages finetune --results_dir outputs/quality_attention_dropout_0 \
        --reviews Appenzeller-Herzog_2020,CLEF2017_CD010438 --finetune_flags "<the default flags> --attention_dropout 0"
    python scripts/compare_runs.py outputs/quality outputs/quality_attention_dropout_0 \
        --labels default attention_dropout_0 --output benchmarks/attention_dropout.md
"""

import json
import shlex
import sys
from pathlib import Path

import _cli  # noqa: F401  (repo root on sys.path)

from screening import outputs
from screening.cli import ScriptArgumentParser
from screening.errors import exit_on_input_error

METRICS = (("honest_oof_fbeta", "honest OOF F7"), ("oof_roc_auc", "OOF AUC"), ("mean_fold_roc_auc", "fold AUC"))


def parse_args(argv=None):
    parser = ScriptArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results_dirs", nargs="+", help="Benchmark results folders; the first is the baseline.")
    parser.add_argument("--labels", nargs="+", help="A name per folder (default: the folder names).")
    parser.add_argument("--pipeline", default="minilm_finetune", help="Run folder name inside each review.")
    parser.add_argument("--output", default=None, help="Markdown file to write (default: print only).")
    parser.add_argument("--notes", default=None, help="Markdown appended under the table (kept when rewritten).")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if len(args.results_dirs) < 2:
        parser.error("give at least two results folders")
    args.labels = args.labels or [Path(d).name for d in args.results_dirs]
    if len(args.labels) != len(args.results_dirs):
        parser.error(f"--labels: {len(args.labels)} names for {len(args.results_dirs)} folders")
    return args


def read_run(folder):
    """Metrics and wall time of one finished run, or None if it has not finished."""
    results, info = folder / "kfold_results.json", folder / "benchmark.json"
    if not results.is_file():
        return None
    run = json.loads(results.read_text())
    run["wall_time_s"] = json.loads(info.read_text())["wall_time_s"] if info.is_file() else float("nan")
    return run


def collect(args):
    """{review: [run per folder]} for the reviews finished in every folder, in the first folder's order."""
    first = Path(args.results_dirs[0])
    reviews = sorted(p.name for p in first.iterdir() if (p / args.pipeline).is_dir()) if first.is_dir() else []
    table = {}
    for review in reviews:
        runs = [read_run(Path(d) / review / args.pipeline) for d in args.results_dirs]
        if all(runs):
            table[review] = runs
    if not table:
        sys.exit(
            f"error: no review has a finished {args.pipeline!r} run in every one of {', '.join(args.results_dirs)}"
        )
    return table


def to_markdown(args, table):
    head = ["review"]
    for _, name in METRICS:
        head += [f"{name} {label}" for label in args.labels]
    head += [f"wall s {label}" for label in args.labels]
    lines = [
        f"# {args.pipeline}: {' vs '.join(args.labels)}",
        "",
        "Folders: " + ", ".join(f"{label} = `{d}`" for label, d in zip(args.labels, args.results_dirs)) + ".",
        f"Command: `python scripts/compare_runs.py {shlex.join(args.argv)}`",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    rows = [*table.items(), ("**mean**", None)]
    for review, runs in rows:
        cells = [review]
        for key, _ in METRICS:
            values = [r[key] for r in runs] if runs else [mean(table, i, key) for i in range(len(args.labels))]
            cells += [f"{v:.3f}" for v in values]
        walls = (
            [r["wall_time_s"] for r in runs]
            if runs
            else [mean(table, i, "wall_time_s") for i in range(len(args.labels))]
        )
        cells += [f"{w:.0f}" for w in walls]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for i, label in enumerate(args.labels[1:], start=1):
        diffs = [runs[i]["honest_oof_fbeta"] - runs[0]["honest_oof_fbeta"] for runs in table.values()]
        better = sum(d > 0 for d in diffs)
        wall = mean(table, i, "wall_time_s") / mean(table, 0, "wall_time_s")
        lines.append(
            f"- {label} vs {args.labels[0]}: honest OOF F7 {sum(diffs) / len(diffs):+.3f} on average, higher on "
            f"{better} of {len(diffs)} reviews; mean wall time {wall:.2f}x."
        )
    lines.append("")
    if args.notes and Path(args.notes).is_file():
        lines += [Path(args.notes).read_text().rstrip(), ""]
    return "\n".join(lines)


def mean(table, i, key):
    return sum(runs[i][key] for runs in table.values()) / len(table)


def main(argv=None):
    args = parse_args(argv)
    text = to_markdown(args, collect(args))
    if args.output:
        outputs.write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    exit_on_input_error(main)
