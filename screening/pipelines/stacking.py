"""Blend or stack several K-fold runs from their oof.csv (and predictions.csv): probability average, rank
average, or logistic regression on the OOF scores; the threshold is searched on the blended OOF and applied to
the blended test predictions."""

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.linear_model import LogisticRegression

from .. import outputs
from ..cli import parse_args, print_summary
from ..errors import ScreeningInputError
from ..kfold import kfold_metrics, predicted_set_figures, rank_normalize, summary_figures
from ..metrics import ThresholdArguments, apply_threshold

METHODS = ("mean", "rank", "lr")


@dataclass
class StackArguments:
    """Runs to combine and how."""

    runs: list[str] = field(metadata={"help": "Output folders of K-fold runs (each with oof.csv; predictions.csv)."})
    output_dir: str = field(metadata={"help": "Where the blend's oof.csv, stack_results.json and predictions go."})
    method: str = field(
        default="rank",
        metadata={
            "help": "'mean' of probabilities; 'rank': mean of each run's percentile among its own OOF scores; "
            "'lr': logistic regression on the runs' OOF logits (nested: each fold's blend is fitted on the others)."
        },
    )
    weights: list[float] | None = field(default=None, metadata={"help": "Weights of the runs for mean and rank."})
    beta: float = field(default=7.0, metadata={"help": "Beta of the F-beta score the threshold is tuned for."})
    C: float = field(default=1.0, metadata={"help": "Inverse regularisation of the 'lr' stacker."})


def load_runs(runs):
    """OOF scores (records x runs) aligned on the first run's ids, its labels and folds, and the test scores
    (records x runs) when every run has predictions.csv over the same ids, else None."""
    if len(runs) < 2:
        raise ScreeningInputError("--runs: give at least two runs to combine")
    first = outputs.read_oof(runs[0])
    oof = np.zeros((len(first), len(runs)))
    test_frames = []
    for j, run in enumerate(runs):
        frame = outputs.read_oof(run).set_index("id")
        if set(frame.index) != set(first["id"]):
            raise ScreeningInputError(f"--runs: {run} has OOF predictions for other ids than {runs[0]}")
        frame = frame.loc[first["id"]]
        if not np.array_equal(frame["label"].to_numpy(), first["label"].to_numpy()):
            raise ScreeningInputError(f"--runs: {run} has other labels than {runs[0]}")
        oof[:, j] = frame["probability"].to_numpy()
        test_frames.append(outputs.read_test_predictions(run))
    test = test_ids = None
    if all(f is not None for f in test_frames):
        test_ids = test_frames[0]["id"]
        if any(f["id"].tolist() != test_ids.tolist() for f in test_frames):
            raise ScreeningInputError("--runs: the runs' predictions.csv hold different test ids")
        test = np.column_stack([f["probability"].to_numpy() for f in test_frames])
    return first, oof, test, test_ids


def blend(oof, labels, folds, test=None, method="rank", weights=None, C=1.0):
    """Blended OOF scores and (when `test` is given) blended test scores."""
    weights = np.ones(oof.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.size != oof.shape[1]:
        raise ScreeningInputError(f"--weights: give one weight per run ({oof.shape[1]}); got {weights.size}")
    weights = weights / weights.sum()
    if method == "mean":
        return oof @ weights, None if test is None else test @ weights
    if method == "rank":
        oof_ranks = np.column_stack([rank_normalize(oof[:, j], oof[:, j]) for j in range(oof.shape[1])])
        blended = oof_ranks @ weights
        if test is None:
            return blended, None
        test_ranks = np.column_stack([rank_normalize(oof[:, j], test[:, j]) for j in range(oof.shape[1])])
        return blended, test_ranks @ weights
    if method == "lr":
        x = logit(np.clip(oof, 1e-6, 1 - 1e-6))
        blended = np.zeros(len(labels))
        for k in np.unique(folds):
            inside = folds == k
            model = LogisticRegression(C=C, class_weight="balanced").fit(x[~inside], labels[~inside])
            blended[inside] = model.predict_proba(x[inside])[:, 1]
        if test is None:
            return blended, None
        model = LogisticRegression(C=C, class_weight="balanced").fit(x, labels)
        return blended, model.predict_proba(logit(np.clip(test, 1e-6, 1 - 1e-6)))[:, 1]
    raise ScreeningInputError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")


def stack_runs(runs, output_dir, method="rank", weights=None, beta=7.0, C=1.0, command=None, rule=None):
    """Blend `runs` and write the blend's outputs; thresholds follow `rule` (a ThresholdArguments; default best
    F-beta), the OOF one applied to the blended test scores."""
    rule = (rule or ThresholdArguments()).resolved()
    first, oof, test, test_ids = load_runs(runs)
    labels, folds = first["label"].to_numpy(), first["fold"].to_numpy()
    blended, blended_test = blend(oof, labels, folds, test, method, weights, C)
    results = kfold_metrics(labels, blended, folds, beta, rule=rule)
    results.update(
        runs=[str(r) for r in runs],
        method=method,
        weights=weights,
        threshold_used=results["oof_threshold"],
        num_folds=len(np.unique(folds)),
        command=command,
    )
    oof_frame = pd.DataFrame({"id": first["id"], "fold": folds, "label": labels, "probability": blended})
    test = None
    if blended_test is not None:
        test = (test_ids, blended_test)
        results.update(predicted_set_figures(results, apply_threshold(blended_test, results["threshold_used"])))
    outputs.write_run_outputs(output_dir, oof_frame, results, test, outputs.results_file("stack"), f"{method} blend")
    return results


def main(argv=None):
    args, threshold_args = parse_args((StackArguments, ThresholdArguments), argv)
    rule = threshold_args.resolved()
    command = " ".join(sys.argv)
    results = stack_runs(args.runs, args.output_dir, args.method, args.weights, args.beta, args.C, command, rule)
    print_summary(summary_figures(results), results, args.output_dir)
    return results
