"""The default ranker's candidates (benchmarks/screening_protocol.md), as they were run on 2026-12-05.

    python benchmarks/screening_selection/run_candidate.py tf03_p01 CLEF2017_CD008760 0-4 out

One JSON of figures per review and seed in OUTDIR. The loop is the project's (`choose_batch` on the ranker's
scores after every batch, priors drawn as `simulate` draws them); `prop0.01` is the `1%` schedule as
ceil(0.01 x records read).
"""

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root

from screening.active.loop import batch_size as grow_size  # noqa: E402
from screening.active.loop import choose_batch  # noqa: E402
from screening.active.rankers import RankerArguments, build_ranker  # noqa: E402
from screening.active.review import load_records  # noqa: E402
from screening.active.simulate import draw_priors, simulation_figures  # noqa: E402
from screening.data import parse_labels, read_table  # noqa: E402

DATA = (Path("/work/shared/data"), Path("/work/shared/data/clef2017"))
CONFIGS = {  # name: (embedding weight beside the TF-IDF (0: tfidf_svm), schedule)
    "svm_grow": (0, "grow"),
    "svm_p01": (0, "prop0.01"),
    "svm_1": (0, "1"),
    "tf03_grow": (0.3, "grow"),
    "tf03_p01": (0.3, "prop0.01"),
    "tf015_p01": (0.15, "prop0.01"),
    "tf015_grow": (0.15, "grow"),
}


def candidate(frame, weight, cache="/work/cache/emb"):
    """tfidf_svm, or tfidf_features at `weight` (LinearSVC C 0.11, includes x9.8 beyond balance; fp32 MiniLM)."""
    name = "tfidf_features" if weight > 0 else "tfidf_svm"
    options = f"view.features_weight={weight}" if weight > 0 else None
    args = RankerArguments(
        ranker=name, ranker_options=options, feature_cache_dir=cache, embedding_precision="fp32", disable_tqdm=True
    )
    return build_ranker(frame, args)


def size_of(schedule, round_index, read):
    if schedule == "grow":
        return grow_size("grow", round_index)
    if schedule.startswith("prop"):
        return max(1, math.ceil(float(schedule[4:]) * read))
    return int(schedule)


def run(ranker, labels, priors, schedule):
    order, read = list(priors), np.zeros(labels.size, bool)
    read[priors] = True
    total, found, rounds = int(labels.sum()), int(labels[priors].sum()), 0
    while found < total:
        rows = np.asarray(order)
        scores = ranker.fit_score(rows, labels[rows])
        batch = choose_batch(scores, np.flatnonzero(~read), size_of(schedule, rounds, len(order)))
        rounds += 1
        read[batch] = True
        order += batch.tolist()
        found += int(labels[batch].sum())
    return np.asarray(order), rounds


def main(name, reviews, seeds, out):
    weight, schedule = CONFIGS[name]
    low, high = map(int, seeds.split("-"))
    for review in reviews.split(","):
        path = next(folder / f"{review}.csv" for folder in DATA if (folder / f"{review}.csv").exists())
        frame, labels = load_records(path), parse_labels(read_table(path), "judgement", path, "--data")
        ranker = None
        for seed in range(low, high + 1):
            target = Path(out) / f"{review}__{name}__seed{seed}.json"
            if target.exists():
                continue
            ranker = ranker or candidate(frame, weight)
            priors = draw_priors(labels, 1, 1, np.random.default_rng(seed))
            start = time.perf_counter()
            order, rounds = run(ranker, labels, priors, schedule)
            stream = np.concatenate([labels[order], np.zeros(labels.size - order.size, int)])
            figures = simulation_figures(stream, labels.size)
            figures.update(seed=seed, wall_time_s=time.perf_counter() - start, retrains=rounds)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"figures": figures}))
            print(review, name, seed, figures["n95"], flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
