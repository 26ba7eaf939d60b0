"""Every file of a run folder, its one writer and its reader; the folder's guard (never overwrite results unasked,
resume from the last complete checkpoint). A file appears whole (temp file in the same folder, then rename) or
not at all.

    eval_predictions.csv   id, probability, label[, prediction]   validation records (a fold's OOF slice)
    predictions.csv        id, probability[, prediction]          test records (a fold's: no prediction)
    submission.csv         id, judgement; no header                test records at the threshold
    oof.csv                id, fold, label, probability[, raw_probability]
    fold_results.json      a fold's figures, written last: marks the fold finished
    <split>_results.json   train/eval/predict figures of a fine-tune run, and all_results.json
    kfold_results.json / stack_results.json, with summary.md and threshold_curve.png (screening.report)

A prioritised-screening folder (run_screening.py; screening.active):

    screening_order.csv      seed, step, id, label, score, round   a simulation's reading order (every run)
    simulation_results.json  per-run figures and stopping-rule outcomes, mean and sd over runs
    next_batch.csv           id, title, abstract, score              what to read next (a real review)
    screened.csv             step, id, label, round                  what was read, in order (a real review)
    state.json               the review's stream, batches and audits; written last
    recall_curve.png         includes found against records read, beside the random line
    summary.md               the figures or the verdicts, the recall curve and the stop certificate
"""

import json
import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ScreeningInputError

logger = logging.getLogger(__name__)

EVAL_PREDICTIONS = "eval_predictions.csv"
PREDICTIONS = "predictions.csv"
SUBMISSION = "submission.csv"
OOF = "oof.csv"
FOLD_RESULTS = "fold_results.json"
ALL_RESULTS = "all_results.json"
TRAINER_STATE = "trainer_state.json"  # transformers' Trainer writes it last in a checkpoint folder
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def results_file(split):
    """`<split>_results.json`: train, eval, predict (fine-tune), kfold, stack."""
    return f"{split}_results.json"


# Files that mark a fine-tune --output_dir as holding an earlier run's results: kept unless --overwrite_output_dir.
RUN_RESULT_FILES = (ALL_RESULTS, *map(results_file, ("train", "eval", "predict")), PREDICTIONS, SUBMISSION)
RUN_RESULT_FILES += (EVAL_PREDICTIONS, OOF, "model.safetensors")


@contextmanager
def atomic_path(path):
    """Yield a temp path beside `path`; on success rename it over `path`, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path, frame, header=True):
    """Write a pandas DataFrame as UTF-8 CSV without the index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, header=header, lineterminator="\n")


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _predictions_frame(ids, probabilities, labels=None, threshold=None):
    from .metrics import apply_threshold

    frame = pd.DataFrame({"id": np.asarray(ids), "probability": np.asarray(probabilities, dtype=np.float64)})
    if labels is not None:
        frame["label"] = np.asarray(labels)
    if threshold is not None:
        frame["prediction"] = apply_threshold(frame["probability"].to_numpy(), threshold)
    return frame


def write_eval_predictions(folder, ids, probabilities, labels, threshold=None):
    """eval_predictions.csv: id, probability, label, and the prediction at `threshold` when given."""
    write_csv(Path(folder) / EVAL_PREDICTIONS, _predictions_frame(ids, probabilities, labels, threshold))


def write_predictions(folder, ids, probabilities, threshold=None):
    """predictions.csv (id, probability); with `threshold` also its prediction column and submission.csv."""
    frame = _predictions_frame(ids, probabilities, threshold=threshold)
    write_csv(Path(folder) / PREDICTIONS, frame)
    if threshold is not None:
        write_csv(Path(folder) / SUBMISSION, frame[["id", "prediction"]], header=False)


def write_fold(fold_dir, valid, output, test, figures):
    """A finished fold: its OOF slice (eval_predictions.csv), its test predictions (`output`: a FoldOutput) and,
    last, fold_results.json."""
    write_eval_predictions(fold_dir, valid["id"].to_numpy(), output.valid_probabilities, valid["labels"].to_numpy())
    if test is not None:
        write_predictions(fold_dir, test["id"].to_numpy(), output.test_probabilities)
    write_json(Path(fold_dir) / FOLD_RESULTS, figures)  # last: marks the fold finished


def fold_is_finished(fold_dir):
    return (Path(fold_dir) / FOLD_RESULTS).is_file()


def read_fold(fold_dir, valid_ids, test_ids):
    """A finished fold's validation and test probabilities (test: None without `test_ids`) and its wall time,
    checked against the current split (a changed split must not mix)."""
    fold_dir = Path(fold_dir)
    valid = pd.read_csv(fold_dir / EVAL_PREDICTIONS, dtype={"id": str})
    if valid["id"].tolist() != [str(i) for i in valid_ids]:
        raise ScreeningInputError(
            f"{fold_dir} was made with a different fold split or training file; "
            "use --overwrite_output_dir (or another --output_dir) to start over"
        )
    test = None
    if test_ids is not None:
        path = fold_dir / PREDICTIONS
        if not path.is_file():
            raise ScreeningInputError(f"{fold_dir} has no test predictions; use --overwrite_output_dir to refit it")
        frame = pd.read_csv(path, dtype={"id": str})
        if frame["id"].tolist() != [str(i) for i in test_ids]:
            raise ScreeningInputError(f"{path} predicts other test ids; use --overwrite_output_dir to refit it")
        test = frame["probability"].to_numpy(np.float64)
    wall_time = json.loads((fold_dir / FOLD_RESULTS).read_text()).get("wall_time_s", 0.0)
    return valid["probability"].to_numpy(np.float64), test, wall_time


def write_run_outputs(out, oof_frame, results, test=None, results_name=results_file("kfold"), title=None):
    """oof.csv, predictions.csv + submission.csv (`test`: ids and probabilities, or None) at
    `results["threshold_used"]`, the results JSON and the report."""
    from .report import write_report  # matplotlib is imported only when a report is written

    out = Path(out)
    write_csv(out / OOF, oof_frame)
    if test is not None:
        write_predictions(out, *test, results["threshold_used"])
    write_json(out / results_name, results)
    write_report(
        out,
        oof_frame["label"].to_numpy(),
        oof_frame["probability"].to_numpy(),
        results,
        title=title or f"{out.name}: {results.get('num_folds', '')}-fold OOF",
        beta=results.get("beta", 7.0),
    )


def read_oof(path):
    """An oof.csv (id, fold, label, probability), ids as text."""
    path = Path(path)
    if path.is_dir():
        path = path / OOF
    if not path.is_file():
        raise ScreeningInputError(f"no OOF file: {path}")
    frame = pd.read_csv(path, dtype={"id": str})
    missing = {"id", "fold", "label", "probability"} - set(frame.columns)
    if missing:
        raise ScreeningInputError(f"{path} has no column {', '.join(sorted(missing))}")
    return frame


def read_test_predictions(folder):
    """A run's predictions.csv (ids as text), or None when it has none."""
    path = Path(folder) / PREDICTIONS
    return pd.read_csv(path, dtype={"id": str}) if path.is_file() else None


def save_metrics(output_dir, split, metrics, all_metrics):
    """Trainer.save_metrics, atomically: `{split}_results.json`, and `all_results.json` with `all_metrics`
    (this run's metrics so far, updated in place, so results of an earlier run never leak in)."""
    all_metrics.update(metrics)
    write_json(Path(output_dir) / results_file(split), metrics)
    write_json(Path(output_dir) / ALL_RESULTS, all_metrics)


def save_trainer_state(trainer, output_dir):
    """Trainer.save_state, atomically."""
    with atomic_path(Path(output_dir) / TRAINER_STATE) as tmp:
        trainer.state.save_to_json(str(tmp))


def is_complete_checkpoint(folder):
    """A checkpoint is complete once its trainer state (written last by Trainer) is there and parses; a folder
    without it was being written when the run died."""
    try:
        json.loads((Path(folder) / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def checkpoints(output_dir):
    """`checkpoint-N` folders of `output_dir`, by step."""
    found = [p for p in Path(output_dir).iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def last_complete_checkpoint(output_dir):
    """The complete checkpoint with the highest step, or None; incomplete later ones are skipped with a warning."""
    for folder in reversed(checkpoints(output_dir)):
        if is_complete_checkpoint(folder):
            return folder
        logger.warning(f"Skipping {folder}: incomplete (no readable {TRAINER_STATE}), the run stopped while saving it")
    return None


def resolve_output_dir(output_dir, result_files, do_train, overwrite=False, resume_from_checkpoint=None):
    """transformers' convention, checked before anything is written. Returns the checkpoint to resume from.

    - `--resume_from_checkpoint PATH`: PATH must be a complete checkpoint.
    - `--overwrite_output_dir`: start over, whatever the folder holds.
    - checkpoints in the folder and `--do_train`: resume from the last complete one.
    - otherwise, any of `result_files` in the folder is an error (results are never overwritten unasked).
    """
    out = Path(output_dir)
    if resume_from_checkpoint:
        if not is_complete_checkpoint(resume_from_checkpoint):
            raise ScreeningInputError(
                f"--resume_from_checkpoint: {resume_from_checkpoint} is not a complete checkpoint folder "
                f"(no readable {TRAINER_STATE})"
            )
        return str(resume_from_checkpoint)
    if overwrite or not out.is_dir():
        return None
    if do_train:
        last = last_complete_checkpoint(out)
        if last is not None:
            logger.warning(f"Resuming from {last}, the last checkpoint in {out}; --overwrite_output_dir starts over")
            return str(last)
    found = [name for name in result_files if (out / name).exists()]
    if found:
        raise ScreeningInputError(
            f"--output_dir {out} already holds results ({', '.join(found)}); "
            "use --overwrite_output_dir to replace them, or another --output_dir"
        )
    return None


# A prioritised-screening folder

SCREENING_ORDER = "screening_order.csv"
SIMULATION_RESULTS = "simulation_results.json"
NEXT_BATCH = "next_batch.csv"
SCREENED = "screened.csv"
STATE = "state.json"
RECALL_CURVE = "recall_curve.png"
SUMMARY = "summary.md"


def write_screening_order(out, frame):
    write_csv(Path(out) / SCREENING_ORDER, frame[["seed", "step", "id", "label", "score", "round"]])


def write_simulation_results(out, results):
    write_json(Path(out) / SIMULATION_RESULTS, results)


def write_next_batch(out, frame):
    write_csv(Path(out) / NEXT_BATCH, frame[["id", "title", "abstract", "score"]])


def write_screened(out, frame):
    write_csv(Path(out) / SCREENED, frame[["step", "id", "label", "round"]])


def write_state(out, state):
    write_json(Path(out) / STATE, state)


def write_summary(out, markdown):
    write_text(Path(out) / SUMMARY, markdown)


def plot_recall_curve(out, streams, records, stops=None, title=""):
    """Includes found (as recall) against records read, one line per stream (0/1 labels in reading order), the
    random line, and the stopping points (`stops`: name -> records read) as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for n, stream in enumerate(streams):
        stream = np.asarray(stream, dtype=np.float64)
        total = max(stream.sum(), 1)
        x = np.arange(0, stream.size + 1)
        y = np.concatenate([[0], np.cumsum(stream) / total])
        ax.plot(
            x,
            y,
            drawstyle="steps-post",
            alpha=0.8 if len(streams) == 1 else 0.4,
            color="C0",
            label="prioritised" if n == 0 else None,
        )
    ax.plot([0, records], [0, 1], color="grey", linestyle="--", label="random reading")
    for n, (name, point) in enumerate((stops or {}).items()):
        ax.axvline(point, color=f"C{n + 1}", linestyle=":", label=f"{name}: {point}")
    ax.set(xlabel="records read", ylabel="share of includes found", xlim=(0, records), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(out) / RECALL_CURVE) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


# The browser app's files in the same screening folder (screening.webapp; screening.active.decisions)

SEARCH = "search.csv"  # the records under review (the upload less the duplicates dropped): run_review's records
DUPLICATES = "duplicates.csv"  # id, duplicate_of, kind, similarity and the record's columns: never shown
LABELS = "labels.csv"  # id, judgement: the resolved decisions, the labels file run_review reads
RESOLUTIONS = "resolutions.json"  # id -> {label, by, time}: conflicts settled and prior knowledge
REVIEWERS = "reviewers"  # <name>.json per reviewer: its decisions and highlight terms; written by that reviewer
EXPORT = "export"  # search_decisions.csv / .ris: the search with its decision columns


def reviewer_file(out, name):
    """`reviewers/<name>.json`, the name's characters other than letters, digits, '.', '_', '-' as '_'."""
    return Path(out) / REVIEWERS / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".json")


def write_reviewer(out, name, payload):
    write_json(reviewer_file(out, name), {**payload, "reviewer": name})


def read_reviewers(out):
    """{name: payload} of every reviewer file of the folder."""
    folder = Path(out) / REVIEWERS
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        payload = json.loads(path.read_text(encoding="utf-8"))
        found[payload["reviewer"]] = payload
    return found


def write_resolutions(out, resolutions):
    write_json(Path(out) / RESOLUTIONS, resolutions)


def read_resolutions(out):
    path = Path(out) / RESOLUTIONS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_labels(out, frame):
    """labels.csv (id, judgement); no labels: no file (a labels file must hold a row; no file is no labels)."""
    if len(frame):
        write_csv(Path(out) / LABELS, frame[["id", "judgement"]])
    else:
        (Path(out) / LABELS).unlink(missing_ok=True)


def write_search(out, frame):
    write_csv(Path(out) / SEARCH, frame)


def write_duplicates(out, frame):
    write_csv(Path(out) / DUPLICATES, frame)


def write_search_export(out, frame):
    """export/search_decisions.csv (every column) and export/search_decisions.ris (title, abstract, authors, year,
    journal, DOI, the id as ID and the decision columns as N1 notes); returns both paths."""
    import rispy

    folder = Path(out) / EXPORT
    csv_path, ris_path = folder / "search_decisions.csv", folder / "search_decisions.ris"
    write_csv(csv_path, frame)
    decision_columns = [c for c in frame.columns if c.startswith("decision") or c in ("label", "duplicate_of")]
    entries = []
    for row in frame.to_dict("records"):
        entry = {"type_of_reference": "JOUR", "id": row["id"], "title": row["title"], "abstract": row["abstract"]}
        for key, column in (("year", "year"), ("secondary_title", "journal"), ("doi", "doi")):
            if row.get(column):
                entry[key] = row[column]
        if row.get("authors"):
            entry["authors"] = [a.strip() for a in row["authors"].split(";") if a.strip()]
        entry["notes"] = [f"{c}: {row[c]}" for c in decision_columns if row.get(c) not in (None, "")]
        entries.append(entry)
    write_text(ris_path, rispy.dumps(entries))
    return csv_path, ris_path


def plot_reliability_overshoot(path, table):
    """Reliability (share of runs reaching the target) against mean overshoot ((n_stop - n_target)/N), one panel
    per target, one point per rule (`table`: stopping.evaluate.aggregate_outcomes' {target: {rule: figures}}); a
    rule run at a stricter target (`rule@t'`) in its rule's colour, hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bases = list(dict.fromkeys(name.partition("@")[0] for rules in table.values() for name in rules))
    fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 4.0), squeeze=False, sharey=True)
    for ax, (target, rules) in zip(axes[0], table.items()):
        for name, figures in rules.items():
            base, _, stricter = name.partition("@")
            color = plt.get_cmap("tab20")(bases.index(base) % 20)
            ax.scatter(
                figures["overshoot"],
                figures["reliability"],
                marker="s" if stricter else "o",
                facecolors="none" if stricter else color,
                edgecolors=color,
                label=name,
            )
        ax.axhline(0.95, color="grey", linestyle=":")
        ax.set(title=f"target {target}", xlabel="mean overshoot (n_stop - n_target) / N", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel("reliability (share of runs reaching the target)")
    axes[0][-1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
