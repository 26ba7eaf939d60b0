"""K-fold cross-validation around any per-fold fit: fold split, fold skipping on rerun, OOF assembly,
fold-ensembled test predictions, and the K-fold metrics.

The loop is model-agnostic: `run_kfold` calls `fit_fold(train, valid, test, fold_dir)` for each
unfinished fold; the fine-tune pipeline passes its Trainer fit, the TF-IDF and feature pipelines a
scikit-learn fit. Every run type therefore writes the same files (each by its writer in screening.outputs):

    output_dir/fold_<k>/eval_predictions.csv   id, probability, label (the fold's OOF slice)
    output_dir/fold_<k>/predictions.csv        id, probability (test; with --do_predict)
    output_dir/fold_<k>/fold_results.json      written last: its presence marks the fold finished
    output_dir/oof.csv                         id, fold, label, probability (every training id once)
    output_dir/kfold_results.json              OOF-wide, honest and per-fold figures (recall with its Clopper-
                                               Pearson interval, share to read, WSS at each threshold; expected
                                               missed includes of the test set)
    output_dir/predictions.csv, submission.csv fold-averaged test predictions at the chosen threshold
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from . import outputs
from .errors import ScreeningInputError
from .metrics import (
    ThresholdArguments,
    apply_threshold,
    choose_threshold,
    expected_missed,
    fbeta_at,
    honest_oof,
    screening_metrics,
)

logger = logging.getLogger(__name__)

ENSEMBLES = ("probability", "logit")
THRESHOLDS = ("oof", "mean_fold")
NORMALIZATIONS = ("none", "rank")
HONEST_KEYS = ("recall", "recall_ci_low", "recall_ci_high", "read_share", "wss", "includes", "includes_found")


@dataclass
class CrossValidationArguments:
    """K-fold cross-validation: K models, out-of-fold (OOF) predictions, a fold-averaged test prediction."""

    num_folds: int = field(
        default=0,
        metadata={
            "help": "Train K models on a stratified K-fold split of --train_file (K >= 2; 0 = one run). Writes oof.csv "
            "and kfold_results.json; a rerun skips folds whose fold_<k>/fold_results.json exists."
        },
    )
    fold_seed: int = field(default=471, metadata={"help": "Seed of the K-fold split."})
    group_column: str | None = field(
        default=None,
        metadata={"help": "Keep records sharing this column's value in one fold (e.g. the review when pooling)."},
    )
    fold_ensemble: str = field(
        default="probability",
        metadata={"help": "Average the folds' test predictions as 'probability' (mean of p) or 'logit' (mean logit)."},
    )
    fold_threshold: str = field(
        default="oof",
        metadata={
            "help": "Threshold for submission.csv: 'oof' (best F-beta on all OOF predictions) or 'mean_fold' "
            "(mean of the folds' own best thresholds, as the competition seed). Both are reported."
        },
    )
    fold_normalization: str = field(
        default="none",
        metadata={
            "help": "'rank': map each fold's scores to their percentile among that fold's OOF scores before pooling "
            "(test scores through the same map), so folds whose scores sit at different levels become comparable."
        },
    )

    def check(self):
        """The flags' values (the data's counts are checked by `make_folds`)."""
        if self.num_folds == 1 or self.num_folds < 0:
            raise ScreeningInputError(f"--num_folds must be 0 (one run) or at least 2; got {self.num_folds}")
        for name, allowed in (
            ("fold_ensemble", ENSEMBLES),
            ("fold_threshold", THRESHOLDS),
            ("fold_normalization", NORMALIZATIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ScreeningInputError(f"--{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")


@dataclass
class FoldOutput:
    """What one fold's fit returns: probabilities for its validation records and (optionally) for the test set."""

    valid_probabilities: np.ndarray
    test_probabilities: np.ndarray | None = None


def make_folds(labels, num_folds, seed=471, groups=None, train_file=None):
    """Fold index (0..K-1) of each record: stratified by label, shuffled with `seed`; group-aware when given.
    Every fold needs both labels: K above the count of the rarer label is an error naming `train_file`."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=2)
    rarer = int(np.argmin(counts))
    if num_folds > counts[rarer]:
        name = "positives (label 1)" if rarer == 1 else "negatives (label 0)"
        fix = f"use --num_folds {counts[rarer]} or fewer" if counts[rarer] >= 2 else "K-fold needs at least 2"
        raise ScreeningInputError(
            f"--num_folds {num_folds} is more than the {counts[rarer]} {name} in --train_file "
            f"{train_file or '(the training data)'}: every fold needs one; {fix}"
        )
    folds = np.full(labels.size, -1, dtype=np.int64)
    if groups is None:
        splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed).split(labels, labels)
    else:
        groups = np.asarray(groups)
        if len(np.unique(groups)) < num_folds:
            raise ScreeningInputError(f"--group_column has fewer than --num_folds {num_folds} distinct values")
        splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed).split(
            labels, labels, groups
        )
    for k, (_, valid) in enumerate(splitter):
        folds[valid] = k
    return folds


def rank_normalize(reference, scores):
    """Percentile of each score among `reference` (share of reference scores <= it): ties stay ties,
    the order within `reference` is kept, and other scores (e.g. test) go through the same map."""
    reference = np.sort(np.asarray(reference, dtype=np.float64))
    return np.searchsorted(reference, np.asarray(scores, dtype=np.float64), side="right") / reference.size


def average_folds(fold_probabilities, how="probability"):
    """Fold ensemble of test predictions: mean of probabilities, or sigmoid of the mean logit."""
    stacked = np.vstack([np.asarray(p, dtype=np.float64) for p in fold_probabilities])
    if how == "probability":
        return stacked.mean(axis=0)
    if how == "logit":
        return expit(logit(np.clip(stacked, 1e-12, 1 - 1e-12)).mean(axis=0))
    raise ValueError(f"unknown fold ensemble {how!r}; expected one of {ENSEMBLES}")


def run_kfold(
    train,
    test,
    fit_fold,
    output_dir,
    cv,
    beta=7.0,
    groups=None,
    overwrite=False,
    main_process=True,
    command=None,
    rule=None,
    train_file=None,
):
    """Train and predict K folds with `fit_fold(fold_train, fold_valid, test, fold_dir) -> FoldOutput`, skipping
    finished folds (unless `overwrite`), then write the OOF, K-fold metrics and fold-averaged test predictions.
    Thresholds (each fold's, the OOF one, the honest nested ones) follow `rule` (a ThresholdArguments; default:
    best F-beta).

    `train` has `id`, `labels` and the text columns; `test` (or None) has `id`; `train_file` names the data in
    errors. Returns the K-fold results dict.
    """
    cv.check()
    rule = (rule or ThresholdArguments()).resolved()
    out = Path(output_dir)
    start = time.perf_counter()
    labels = train["labels"].to_numpy()
    folds = make_folds(labels, cv.num_folds, cv.fold_seed, groups, train_file)
    test_ids = None if test is None else test["id"].tolist()
    oof = np.zeros(len(train), dtype=np.float64)
    raw_oof = np.zeros(len(train), dtype=np.float64)
    test_scores, skipped, fold_times = [], [], []
    for k in range(cv.num_folds):
        fold_dir = out / f"fold_{k}"
        inside = folds == k
        fold_train, valid = train[~inside].reset_index(drop=True), train[inside].reset_index(drop=True)
        if outputs.fold_is_finished(fold_dir) and not overwrite:
            logger.info(f"Fold {k}: finished earlier, reading {fold_dir}")
            *probabilities, wall_time = outputs.read_fold(fold_dir, valid["id"], test_ids)
            output = FoldOutput(*probabilities)
            skipped.append(k)
            fold_times.append(wall_time)
        else:
            logger.info(f"Fold {k}/{cv.num_folds}: training on {len(fold_train)}, validating on {len(valid)} records")
            fold_start = time.perf_counter()
            output = fit_fold(fold_train, valid, test, fold_dir)
            fold_times.append(time.perf_counter() - fold_start)
            if main_process:
                figures = screening_metrics(valid["labels"].to_numpy(), output.valid_probabilities, beta, rule)
                figures.update(records=len(valid), positives=int(valid["labels"].sum()))
                figures.update(wall_time_s=round(fold_times[-1], 1))
                outputs.write_fold(fold_dir, valid, output, test, figures)
        raw_oof[inside] = output.valid_probabilities
        if cv.fold_normalization == "rank":
            oof[inside] = rank_normalize(output.valid_probabilities, output.valid_probabilities)
            if output.test_probabilities is not None:
                test_scores.append(rank_normalize(output.valid_probabilities, output.test_probabilities))
        else:
            oof[inside] = output.valid_probabilities
            if output.test_probabilities is not None:
                test_scores.append(output.test_probabilities)

    oof_frame = pd.DataFrame({"id": train["id"].to_numpy(), "fold": folds, "label": labels, "probability": oof})
    if cv.fold_normalization != "none":
        oof_frame["raw_probability"] = raw_oof
    results = kfold_metrics(labels, oof, folds, beta, raw_oof, rule)
    results.update(
        num_folds=cv.num_folds,
        fold_seed=cv.fold_seed,
        fold_normalization=cv.fold_normalization,
        fold_ensemble=cv.fold_ensemble,
        threshold_rule=cv.fold_threshold,
        threshold_used=results["oof_threshold"] if cv.fold_threshold == "oof" else results["mean_fold_threshold"],
        skipped_folds=skipped,
        fold_wall_time_s=round(float(np.sum(fold_times)), 1),  # all folds, those of earlier runs included
        wall_time_s=round(time.perf_counter() - start, 1),  # this call
        command=command,
    )
    test_predictions = None
    if test is not None:
        how = "probability" if cv.fold_normalization == "rank" else cv.fold_ensemble  # percentiles: plain mean
        test_predictions = (test["id"].to_numpy(), average_folds(test_scores, how))
        prediction = apply_threshold(test_predictions[1], results["threshold_used"])
        results.update(predicted_set_figures(results, prediction))
    if main_process:
        outputs.write_run_outputs(out, oof_frame, results, test_predictions, outputs.results_file("kfold"))
    return results


def kfold_metrics(labels, oof, folds, beta=7.0, raw_oof=None, rule=None):
    """OOF-wide figures (the threshold `rule` chooses on all OOF; default best F-beta), the honest nested figures
    (each fold at the threshold chosen on the other folds: F-beta, recall with its Clopper-Pearson interval, share
    to read, WSS), and per-fold figures; the mean of the folds' own thresholds and the pooled vs mean per-fold ROC
    AUC (far apart = fold scores not comparable). Logs the one-line warning when the OOF includes are too few to
    certify a recall target."""
    labels, oof, folds = np.asarray(labels), np.asarray(oof, dtype=np.float64), np.asarray(folds)
    rule = (rule or ThresholdArguments()).resolved()
    pooled = screening_metrics(labels, oof, beta, rule)
    if pooled["recall_target_certified"] is False:
        logger.warning(choose_threshold(labels, oof, beta, rule, data="OOF").message)
    honest = honest_oof(labels, oof, folds, beta, rule)
    per_fold = []
    for k in np.unique(folds):
        inside = folds == k
        m = screening_metrics(labels[inside], oof[inside], beta, rule)
        t = honest["thresholds"][k.item()]
        y, read = labels[inside] == 1, apply_threshold(oof[inside], t) == 1
        per_fold.append(
            {
                "fold": int(k),
                "records": int(inside.sum()),
                "positives": int(labels[inside].sum()),
                "fbeta": m["fbeta"],
                "threshold": m["threshold"],
                "recall": m["recall"],
                "read_share": m["read_share"],
                "roc_auc": m["roc_auc"],
                "honest_threshold": t,
                "honest_recall": float(np.sum(read & y) / y.sum()) if y.any() else None,
                "honest_read_share": float(read.mean()),
                "honest_recall_target_certified": honest["certified"][k.item()],
            }
        )
    mean_threshold = float(np.mean([f["threshold"] for f in per_fold]))
    aucs = [f["roc_auc"] for f in per_fold if f["roc_auc"] is not None]
    results = {f"oof_{k}": v for k, v in pooled.items()}
    certified = list(honest["certified"].values())
    results.update(
        {f"honest_oof_{k}": honest[k] for k in HONEST_KEYS},
        honest_oof_precision=honest["precision"],
        honest_recall_target_certified=None if certified[0] is None else all(certified),
        **rule.as_dict(),
    )
    results.update(
        honest_oof_fbeta=honest["fbeta"],
        mean_fold_threshold=mean_threshold,
        mean_fold_threshold_fbeta=fbeta_at(labels, oof, mean_threshold, beta),
        mean_fold_roc_auc=float(np.mean(aucs)) if aucs else None,
        beta=beta,
        records=int(labels.size),
        positives=int(labels.sum()),
        folds=per_fold,
    )
    if raw_oof is not None:
        results["oof_raw_roc_auc"] = screening_metrics(labels, raw_oof, beta)["roc_auc"]
    return results


def predicted_set_figures(results, prediction):
    """Figures of a fold-averaged test prediction: predicted includes and records, and the expected missed includes
    (screening.metrics.expected_missed) from the OOF prevalence and the honest OOF recall and its interval (the
    honest figure is what a threshold chosen on OOF predictions reaches on records it was not chosen on)."""
    prevalence = results["positives"] / results["records"] if results.get("records") else None
    missed = expected_missed(
        prevalence,
        len(prediction),
        results.get("honest_oof_recall"),
        results.get("honest_oof_recall_ci_low"),
        results.get("honest_oof_recall_ci_high"),
    )
    return {"predicted_includes": int(np.sum(prediction)), "predicted_records": len(prediction), **missed}


SUMMARY_KEYS = ("honest_oof_fbeta", "oof_fbeta", "oof_threshold", "mean_fold_threshold", "oof_roc_auc")
SUMMARY_KEYS += ("mean_fold_roc_auc", "oof_wss_95", "skipped_folds")


def summary_figures(results):
    """The figures a K-fold run (or a blend of runs) prints when it ends."""
    return {k: results[k] for k in SUMMARY_KEYS if results.get(k) is not None}
