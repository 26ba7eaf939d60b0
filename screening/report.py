"""Per-run report: a PNG of precision, recall and F-beta against the threshold beside the PR curve, and a
short markdown summary. Written next to the run's metrics JSON."""

from pathlib import Path

import numpy as np

from . import outputs
from .metrics import recall_sentence, threshold_curve

PLOT_NAME = "threshold_curve.png"
SUMMARY_NAME = "summary.md"
SUMMARY_KEYS = (
    "threshold_objective",
    "target_recall",
    "recall_confidence",
    "honest_oof_fbeta",
    "honest_oof_recall",
    "honest_oof_recall_ci_low",
    "honest_oof_recall_ci_high",
    "honest_oof_read_share",
    "honest_oof_wss",
    "honest_recall_target_certified",
    "oof_fbeta",
    "oof_threshold",
    "mean_fold_threshold",
    "mean_fold_threshold_fbeta",
    "threshold_used",
    "oof_precision",
    "oof_recall",
    "oof_recall_ci_low",
    "oof_recall_ci_high",
    "oof_read_share",
    "oof_wss",
    "oof_recall_target_certified",
    "oof_roc_auc",
    "mean_fold_roc_auc",
    "oof_raw_roc_auc",
    "oof_average_precision",
    "oof_wss_95",
    "oof_all_positive_fbeta",
    "eval_fbeta",
    "eval_threshold",
    "eval_precision",
    "eval_recall",
    "eval_recall_ci_low",
    "eval_recall_ci_high",
    "eval_read_share",
    "eval_wss",
    "eval_recall_target_certified",
    "eval_roc_auc",
    "eval_average_precision",
    "eval_wss_95",
    "eval_all_positive_fbeta",
    "records",
    "positives",
    "predicted_includes",
    "predicted_records",
    "expected_missed",
    "expected_missed_low",
    "expected_missed_high",
    "predict_includes",
    "predict_samples",
    "predict_expected_missed",
    "predict_expected_missed_low",
    "predict_expected_missed_high",
    "fold_wall_time_s",
    "wall_time_s",
)


def plot_threshold_curve(path, labels, scores, beta=7.0, title=""):
    """Left: precision, recall and F-beta at every candidate threshold; right: precision against recall."""
    import matplotlib  # imported here: a prediction-only run never plots, and pyplot takes ~0.5-1 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = threshold_curve(labels, scores, beta)
    tp, fp, fn = (curve[k].astype(np.float64) for k in ("tp", "fp", "fn"))
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / np.maximum(tp + fn, 1)
    best = int(np.argmax(curve["fbeta"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for values, name in ((precision, "precision"), (recall, "recall"), (curve["fbeta"], f"F{beta:g}")):
        left.plot(curve["threshold"], values, label=name, drawstyle="steps-post")
    left.axvline(curve["threshold"][best], color="grey", linestyle=":", label=f"best t={curve['threshold'][best]:.3g}")
    left.set(xlabel="threshold (positive iff score >= t)", ylabel="value", ylim=(0, 1.02))
    left.legend(loc="center right", fontsize=8)
    right.plot(recall, precision, drawstyle="steps-post")
    right.scatter([recall[best]], [precision[best]], color="red", zorder=3, label=f"best F{beta:g}")
    right.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="precision-recall")
    right.legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with outputs.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


def summary_markdown(results, title, command=None, plot_name=PLOT_NAME):
    lines = [f"# {title}", ""]
    sentence = recall_sentence(results)
    if sentence:  # what a review team reports: recall with its exact interval, work, expected misses
        lines += ["**Recall you can report:** " + sentence.replace("\n", "; "), ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(results[k])} |" for k in SUMMARY_KEYS if k in results]
    if results.get("folds"):
        lines += [
            "",
            "Per fold (own threshold; honest = the threshold chosen on the other folds):",
            "",
            "| fold | records | positives | fbeta | threshold | recall | read_share | roc_auc | honest_threshold "
            "| honest_recall | honest_read_share |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['fold']} | {f['records']} | {f['positives']} | {_fmt(f['fbeta'])} | {_fmt(f['threshold'])} "
            f"| {_fmt(f.get('recall'))} | {_fmt(f.get('read_share'))} | {_fmt(f['roc_auc'])} "
            f"| {_fmt(f.get('honest_threshold'))} | {_fmt(f.get('honest_recall'))} "
            f"| {_fmt(f.get('honest_read_share'))} |"
            for f in results["folds"]
        ]
    lines += ["", f"![threshold curve]({plot_name})", ""]
    command = command or results.get("command")
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    return "\n".join(lines)


def write_report(out_dir, labels, scores, results, title, beta=7.0, command=None):
    """`threshold_curve.png` and `summary.md` in `out_dir` (the metrics JSON is the caller's)."""
    out = Path(out_dir)
    plot_threshold_curve(out / PLOT_NAME, labels, scores, beta, title)
    outputs.write_text(out / SUMMARY_NAME, summary_markdown(results, title, command))
