#!/usr/bin/env python
"""A fixed set of runs on a tiny random model (single fine-tune run, 3-fold fine-tune, TF-IDF, features, stack),
to show that a change of code shape leaves behaviour unchanged: record it before, record it after, compare.

    python scripts/record_run_set.py --output_dir /tmp/before
    python scripts/record_run_set.py --output_dir /tmp/after --compare /tmp/before --report benchmarks/run_set.md

The comparison reads every CSV and JSON file of both sets and reports any difference, timings and the
the run set's own folder aside (`--compare` exits 1 on a difference). Everything runs in float32 on the CPU.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from screening import outputs  # noqa: E402
from screening.cli import ScriptArgumentParser  # noqa: E402
from screening.errors import exit_on_input_error  # noqa: E402
from tests.conftest import ModelTester, tiny_encoder_config, write_demo_train  # noqa: E402

# Keys whose values differ from run to run whatever the code: clock times, throughput, paths, the command line.
VOLATILE = ("runtime", "per_second", "wall_time", "command", "total_flos", "output_dir", "logging_dir", "run_name")
TINY = ["--max_seq_length", "32", "--prediction_precision", "fp32", "--use_cpu", "--report_to", "none"]
TRAIN = ["--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", "--seed", "3"]


def run(script, *argv):
    command = [sys.executable, str(REPO / script), *map(str, argv)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{script} failed:\n{done.stderr[-3000:]}")


def record(out):
    out.mkdir(parents=True, exist_ok=True)
    data, encoder = out / "data", out / "tiny-bert"
    data.mkdir(exist_ok=True)
    write_demo_train(data, 12, 108, test_rows=40)
    tester = ModelTester()
    torch.manual_seed(0)
    from transformers import BertModel

    BertModel(tiny_encoder_config(len(tester.vocab))).save_pretrained(encoder)
    tester.tokenizer().save_pretrained(encoder)
    files = ["--train_file", data / "train.csv", "--test_file", data / "test.csv"]
    finetune = ["--model_name_or_path", encoder, *files, "--do_train", "--do_predict", *TINY, *TRAIN]
    run("run_classification.py", *finetune, "--do_eval", "--output_dir", out / "single")
    run("run_classification.py", *finetune, "--num_folds", "3", "--output_dir", out / "kfold")
    run("scripts/run_tfidf.py", *files, "--num_folds", "3", "--output_dir", out / "tfidf")
    features = ["--model_name_or_path", encoder, *files, "--max_seq_length", "32", "--num_folds", "3"]
    run("scripts/run_features.py", *features, "--output_dir", out / "features")
    runs = [out / "tfidf", out / "features", out / "kfold"]
    run("scripts/stack.py", "--runs", *runs, "--method", "rank", "--output_dir", out / "stack")


def stable(value):
    """`value` without the volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def run_set_files(folder):
    """Relative path -> content of every CSV and JSON file of the run set (data and encoder aside)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(("data/", "tiny-bert/")) or "/checkpoint-" in rel or path.suffix not in (".csv", ".json"):
            continue
        text = path.read_text(encoding="utf-8").replace(str(folder.resolve()), "<run set>")
        found[rel] = stable(json.loads(text)) if path.suffix == ".json" else text
        if path.name == "tokenizer.json":  # the last call's truncation/padding state, not a setting
            found[rel] = {k: v for k, v in found[rel].items() if k not in ("truncation", "padding")}
    return found


def compare(after, before):
    """Lines saying how the run set in `after` differs from the one in `before` (the first line counts)."""
    new, old = run_set_files(after), run_set_files(before)
    lines = [f"only in {before}: {p}" for p in sorted(old.keys() - new.keys())]
    lines += [f"only in {after}: {p}" for p in sorted(new.keys() - old.keys())]
    lines += [f"differs: {p}" for p in sorted(old.keys() & new.keys()) if old[p] != new[p]]
    same = len(old.keys() & new.keys()) - sum(line.startswith("differs") for line in lines)
    return [
        f"{same} CSV/JSON files identical (timings and the run set's folder aside); {len(lines)} differences"
    ] + lines


def main(argv=None):
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, type=Path, help="Where to write the run set.")
    parser.add_argument("--compare", type=Path, help="An earlier run set to compare with; exit 1 on a difference.")
    parser.add_argument("--report", type=Path, help="With --compare: also write the comparison to this markdown file.")
    args = parser.parse_args(argv)
    record(args.output_dir)
    print(f"Run set in {args.output_dir.resolve()}")
    if args.compare is None:
        return
    lines = compare(args.output_dir, args.compare)
    print("\n".join(lines))
    if args.report is not None:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        body = [f"# Run set: {args.output_dir} against {args.compare}", "", f"Code at {commit.stdout.strip()}."]
        body += ["Command: `" + " ".join(["python scripts/record_run_set.py", *sys.argv[1:]]) + "`", "", "```"]
        outputs.write_text(args.report, "\n".join(body + lines + ["```", ""]))
    if len(lines) > 1:
        sys.exit(1)


if __name__ == "__main__":
    exit_on_input_error(main)
