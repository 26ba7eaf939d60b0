"""Screening metrics: exact F-beta threshold search, recall-target thresholds with Clopper-Pearson bounds,
honest (nested) OOF figures, WSS@95, and the expected number of missed includes.

Convention everywhere: a record is predicted positive iff `p >= t`.
"""

import logging
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import beta as beta_distribution
from sklearn.metrics import average_precision_score, roc_auc_score

from .errors import ScreeningInputError

logger = logging.getLogger(__name__)

OBJECTIVES = ("fbeta", "recall")
DEFAULT_TARGET_RECALL = 0.95
DEFAULT_RECALL_CONFIDENCE = 0.95
INTERVAL_CONFIDENCE = 0.95  # the two-sided recall interval reported beside every threshold


@dataclass
class ThresholdArguments:
    """How the threshold is chosen on held-out (validation or out-of-fold) predictions. The same object is the
    rule every metric function takes (`rule=`); unset fields fall back to a saved model's values, then defaults."""

    threshold_objective: str | None = field(
        default=None,
        metadata={
            "help": "What the threshold is chosen for: 'fbeta' (the best F-beta, --beta) or 'recall' (the highest "
            "threshold whose one-sided lower confidence bound on recall, from the held-out includes, reaches "
            "--target_recall). Default: fbeta (a saved screening model: its saved objective)."
        },
    )
    target_recall: float | None = field(
        default=None,
        metadata={"help": "Recall the 'recall' objective must certify, in (0, 1] (default 0.95 or the saved value)."},
    )
    recall_confidence: float | None = field(
        default=None,
        metadata={
            "help": "Confidence of the recall bound, in (0, 1): the one-sided exact (Clopper-Pearson) lower bound "
            "at this confidence must reach --target_recall; 0.5 uses the point estimate found/known instead "
            "(default 0.95 or the saved value)."
        },
    )

    def check(self):
        """A one-line ScreeningInputError naming the flag of a bad value."""
        if self.threshold_objective is not None and self.threshold_objective not in OBJECTIVES:
            raise ScreeningInputError(
                f"--threshold_objective must be one of {', '.join(OBJECTIVES)}; got {self.threshold_objective!r}"
            )
        if self.target_recall is not None and not 0 < self.target_recall <= 1:
            raise ScreeningInputError(f"--target_recall must be in (0, 1]; got {self.target_recall}")
        if self.recall_confidence is not None and not 0 < self.recall_confidence < 1:
            raise ScreeningInputError(f"--recall_confidence must be in (0, 1); got {self.recall_confidence}")
        return self

    def resolved(self, saved=None):
        """A checked rule with every field set: the values given here, else `saved`'s (a model config or a
        mapping with the same names), else fbeta / 0.95 / 0.95."""
        self.check()

        def pick(name, default):
            value = getattr(self, name)
            if value is None and saved is not None:
                value = saved.get(name) if isinstance(saved, dict) else getattr(saved, name, None)
            return default if value is None else value

        return ThresholdArguments(
            pick("threshold_objective", "fbeta"),
            float(pick("target_recall", DEFAULT_TARGET_RECALL)),
            float(pick("recall_confidence", DEFAULT_RECALL_CONFIDENCE)),
        ).check()

    def describe(self, beta=7.0):
        """The rule in words, e.g. 'best F7' or 'recall >= 0.95 at 95% confidence'."""
        rule = self.resolved()
        if rule.threshold_objective == "fbeta":
            return f"best F{beta:g}"
        if rule.recall_confidence == 0.5:
            return f"recall >= {rule.target_recall:g} (point estimate)"
        return f"recall >= {rule.target_recall:g} at {rule.recall_confidence:.0%} confidence"

    def as_dict(self):
        rule = self.resolved()
        return {
            "threshold_objective": rule.threshold_objective,
            "target_recall": rule.target_recall,
            "recall_confidence": rule.recall_confidence,
        }


@dataclass
class ThresholdSearch:
    """Chosen threshold and the figures at it. For the recall objective, also the credited recall (the lower
    bound, or the point estimate at confidence 0.5), whether it reaches the target, and the one-line warning
    when the includes are too few to certify it."""

    threshold: float
    fbeta: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    objective: str = "fbeta"
    recall_bound: float | None = None
    certified: bool | None = None
    message: str | None = None


def _as_arrays(labels, probs):
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if labels.shape != probs.shape:
        raise ValueError(f"labels and probabilities differ in length: {labels.shape[0]} vs {probs.shape[0]}")
    return labels, probs


def fbeta_score(tp, fp, fn, beta):
    """F-beta from confusion counts (arrays allowed); 0 where tp is 0."""
    b2 = beta * beta
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = (1 + b2) * tp + b2 * fn + fp
    return np.divide((1 + b2) * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def threshold_curve(labels, probs, beta=7.0):
    """Every candidate threshold (each distinct probability, descending) with tp, fp, fn and F-beta.

    O(n log n) without an argsort: all scores are sorted once (a value sort, SIMD-fast), tie groups are read at
    their ends, so a group of tied scores is never split, and tp at each threshold comes from a binary search
    among the (few) positives' sorted scores.
    """
    labels, probs = _as_arrays(labels, probs)
    p = np.sort(probs)[::-1]
    ends = np.r_[np.flatnonzero(p[1:] != p[:-1]), p.size - 1] if p.size else np.array([], dtype=np.int64)
    thresholds = p[ends]
    positives = np.sort(probs[labels == 1])
    tp = positives.size - np.searchsorted(positives, thresholds, side="left")  # positives with p >= threshold
    fp = ends + 1 - tp
    fn = positives.size - tp
    return {"threshold": thresholds, "tp": tp, "fp": fp, "fn": fn, "fbeta": fbeta_score(tp, fp, fn, beta)}


def best_threshold(labels, probs, beta=7.0):
    """The threshold with the highest F-beta (ties go to the higher threshold)."""
    curve = threshold_curve(labels, probs, beta)
    if curve["threshold"].size == 0:
        raise ValueError("cannot search a threshold on zero records")
    return _search_at(curve, int(np.argmax(curve["fbeta"])))


def _search_at(curve, i, **extra):
    """The `ThresholdSearch` of candidate `i` of a `threshold_curve` (`extra`: the objective's own fields)."""
    tp, fp, fn = int(curve["tp"][i]), int(curve["fp"][i]), int(curve["fn"][i])
    return ThresholdSearch(
        threshold=float(curve["threshold"][i]),
        fbeta=float(curve["fbeta"][i]),
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        tp=tp,
        fp=fp,
        fn=fn,
        **extra,
    )


def recall_lower_bound(found, known, confidence=0.95):
    """One-sided exact (Clopper-Pearson) lower confidence bound on recall with `found` of `known` includes at or
    above the threshold: the Beta(found, known - found + 1) quantile at 1 - confidence; 0 where nothing is found,
    (1 - confidence) ** (1 / known) where everything is (23 of 23 at 95%: 0.8779). Arrays allowed."""
    found, known = np.broadcast_arrays(np.asarray(found, dtype=np.float64), np.asarray(known, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        bound = beta_distribution.ppf(1 - confidence, np.maximum(found, 1), known - found + 1)
    return np.where(found > 0, bound, 0.0)


def recall_interval(found, known, confidence=INTERVAL_CONFIDENCE):
    """Two-sided exact (Clopper-Pearson) interval (low, high) on recall with `found` of `known` includes found:
    low = Beta(k, n-k+1) at (1-c)/2 (0 for k = 0), high = Beta(k+1, n-k) at (1+c)/2 (1 for k = n); 5 of 10 at
    95%: (0.1871, 0.8129). Arrays allowed; nan where known is 0."""
    found, known = np.broadcast_arrays(np.asarray(found, dtype=np.float64), np.asarray(known, dtype=np.float64))
    tail = (1 - confidence) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(found > 0, beta_distribution.ppf(tail, np.maximum(found, 1), known - found + 1), 0.0)
        high = np.where(found < known, beta_distribution.ppf(1 - tail, found + 1, np.maximum(known - found, 1)), 1.0)
    nan = known <= 0
    return np.where(nan, np.nan, low), np.where(nan, np.nan, high)


def credited_recall(found, known, confidence):
    """The recall a threshold is credited with by the recall objective: the one-sided Clopper-Pearson lower bound
    at `confidence`, or the point estimate found / known at confidence 0.5."""
    found, known = np.asarray(found, dtype=np.float64), np.asarray(known, dtype=np.float64)
    if confidence == 0.5:
        return np.divide(found, known, out=np.zeros(np.broadcast(found, known).shape), where=known > 0)
    return recall_lower_bound(found, known, confidence)


def uncertified_message(known, rule, data="held-out"):
    """The one line a run prints when `known` includes cannot certify the rule's target even if all are found."""
    best = float(credited_recall(known, known, rule.recall_confidence)) if known else 0.0
    return (
        f"warning: {known} {data} includes cannot certify recall {rule.target_recall:g} at confidence "
        f"{rule.recall_confidence:g} (best possible lower bound {best:.3f}); using the lowest threshold that "
        f"keeps all {known}"
    )


def recall_threshold(labels, probs, target_recall=0.95, confidence=0.95, beta=7.0, data="held-out"):
    """The highest threshold whose credited recall (`credited_recall`, from the includes at or above it among the
    `labels`) reaches `target_recall`. Where even finding every include cannot reach it (too few includes), the
    lowest threshold that keeps every include, with `certified=False` and the warning in `message`; with no
    include at all, the lowest threshold (every record included)."""
    rule = ThresholdArguments("recall", target_recall, confidence).resolved()
    curve = threshold_curve(labels, probs, beta)
    if curve["threshold"].size == 0:
        raise ValueError("cannot search a threshold on zero records")
    known = int(curve["tp"][-1])
    bound = credited_recall(curve["tp"], known, rule.recall_confidence) if known else np.zeros(curve["tp"].size)
    reaches = bound >= rule.target_recall - 1e-12
    if known and reaches.any():
        i, certified, message = int(np.argmax(reaches)), True, None  # the first (= highest) threshold that does
    else:
        i = int(np.argmax(curve["tp"] == known)) if known else curve["threshold"].size - 1
        certified, message = False, uncertified_message(known, rule, data)
    return _search_at(curve, i, objective="recall", recall_bound=float(bound[i]), certified=certified, message=message)


def choose_threshold(labels, probs, beta=7.0, rule=None, data="held-out"):
    """The threshold of `rule` (a ThresholdArguments; default: best F-beta) on held-out labels and scores: the one
    entry point every run type uses. `data` names the held-out data in the too-few-includes warning."""
    rule = (rule or ThresholdArguments()).resolved()
    if rule.threshold_objective == "recall":
        return recall_threshold(labels, probs, rule.target_recall, rule.recall_confidence, beta, data)
    return best_threshold(labels, probs, beta)


def recall_figures(found, known, read, records):
    """What a review team reports at a threshold, from counts: `recall` = found/known with its two-sided 95%
    Clopper-Pearson interval (`recall_ci_low`, `recall_ci_high`), `read_share` = read/records (the records at or
    above the threshold), and `wss` = (records - read)/records - (1 - recall), the work saved over sampling at
    that threshold (WSS@95's definition with the recall actually reached)."""
    low, high = recall_interval(found, known)
    recall = found / known if known else float("nan")
    read_share = read / records if records else float("nan")
    return {
        "recall": float(recall),
        "recall_ci_low": float(low),
        "recall_ci_high": float(high),
        "read_share": float(read_share),
        "wss": float((records - read) / records - (1 - recall)) if records and known else float("nan"),
        "includes": int(known),
        "includes_found": int(found),
        "records": int(records),
        "records_read": int(read),
    }


def apply_threshold(probabilities, threshold):
    """0/1 labels: 1 iff probability >= threshold. The one place this rule is written in the library (modeling/,
    copied beside saved weights, keeps its own `predict_labels`; a test checks that both agree)."""
    return (np.asarray(probabilities, dtype=np.float64) >= threshold).astype(np.int64)


def recall_report(labels, probs, threshold):
    """`recall_figures` of the labels at `threshold` (`p >= threshold` is read)."""
    labels, probs = _as_arrays(labels, probs)
    read = apply_threshold(probs, threshold) == 1
    return recall_figures(int(np.sum(read & (labels == 1))), int(labels.sum()), int(read.sum()), labels.size)


def expected_missed(prevalence, records, recall, recall_ci_low, recall_ci_high):
    """Expected includes missed among `records` new records screened at a threshold: with E = prevalence x
    records expected includes, E x (1 - recall), and the interval E x (1 - recall_ci_high) .. E x (1 -
    recall_ci_low) from the recall interval. Assumes the new records come from the same distribution as the
    held-out ones (same prevalence, same scores for includes) and ignores the uncertainty of the prevalence."""
    if prevalence is None or recall is None or not np.isfinite(recall):
        return {"expected_includes": None, "expected_missed": None, "expected_missed_low": None,
                "expected_missed_high": None}  # fmt: skip
    expected = float(prevalence) * records
    return {
        "expected_includes": expected,
        "expected_missed": expected * (1 - recall),
        "expected_missed_low": expected * (1 - recall_ci_high),
        "expected_missed_high": expected * (1 - recall_ci_low),
    }


def fbeta_at(labels, probs, threshold, beta=7.0):
    """F-beta of the labels `p >= threshold`."""
    labels, probs = _as_arrays(labels, probs)
    pred = apply_threshold(probs, threshold) == 1
    tp = int(np.sum(pred & (labels == 1)))
    return float(fbeta_score(tp, int(pred.sum()) - tp, int(labels.sum()) - tp, beta))


def wss_at_recall(labels, probs, recall=0.95):
    """Work saved over sampling: screen the ranking top-down (a tie group as a whole) until recall
    first reaches `recall`; with n of N records screened, WSS = (N - n) / N - (1 - recall)."""
    curve = threshold_curve(labels, probs)
    positives = curve["tp"][-1] if curve["tp"].size else 0
    if positives == 0:
        return float("nan")
    i = int(np.argmax(curve["tp"] / positives >= recall - 1e-12))
    screened = curve["tp"][i] + curve["fp"][i]
    total = curve["tp"][-1] + curve["fp"][-1]
    return float((total - screened) / total - (1.0 - recall))


def honest_oof(labels, probs, folds, beta=7.0, rule=None):
    """Nested OOF figures: fold k is labelled with the threshold `rule` chooses (default: best F-beta) on the
    other folds' OOF predictions, and the confusion counts are pooled. Returns `fbeta`, `precision`, the
    `recall_figures` of the pooled counts (recall with its 95% Clopper-Pearson interval, read_share, wss),
    `thresholds` and `certified` ({fold: ...}; certified is None for the fbeta objective)."""
    labels, probs = _as_arrays(labels, probs)
    folds = np.asarray(folds).reshape(-1)
    tp = fp = fn = 0
    thresholds, certified = {}, {}
    for k in np.unique(folds):
        inside = folds == k
        choice = choose_threshold(labels[~inside], probs[~inside], beta, rule)
        pred = apply_threshold(probs[inside], choice.threshold) == 1
        y = labels[inside] == 1
        tp += int(np.sum(pred & y))
        fp += int(np.sum(pred & ~y))
        fn += int(np.sum(~pred & y))
        thresholds[k.item()], certified[k.item()] = choice.threshold, choice.certified
    return {
        "fbeta": float(fbeta_score(tp, fp, fn, beta)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        **recall_figures(tp, tp + fn, tp + fp, labels.size),
        "thresholds": thresholds,
        "certified": certified,
    }


def honest_oof_fbeta(labels, probs, folds, beta=7.0, rule=None):
    """Nested OOF F-beta: fold k is labelled with the threshold chosen (default: best F-beta) on the other folds'
    OOF, and the confusion counts are pooled. Returns (fbeta, {fold: threshold})."""
    result = honest_oof(labels, probs, folds, beta, rule)
    return result["fbeta"], result["thresholds"]


def all_positive_fbeta(labels, beta=7.0):
    """F-beta of labelling every record positive: the floor a screening model must beat."""
    labels = np.asarray(labels).reshape(-1)
    positives = int(labels.sum())
    return float(fbeta_score(positives, labels.size - positives, 0, beta))


def _or_none(fn, *args):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined for one class: reported as None
            value = float(fn(*args))
    except ValueError:
        return None
    return None if np.isnan(value) else value


def screening_metrics(labels, probs, beta=7.0, rule=None):
    """All figures of a scored set at the threshold `rule` chooses (default: best F-beta): fbeta, that
    threshold, precision, recall with its two-sided 95% Clopper-Pearson interval (recall_ci_low/high),
    read_share (share of records at or above it), wss (at it), includes and includes_found, recall_bound and
    recall_target_certified (the recall objective's credited recall and whether it reaches the target; None for
    fbeta), roc_auc, average_precision, wss_95, all_positive_fbeta (None where undefined, e.g. one class)."""
    labels, probs = _as_arrays(labels, probs)
    search = asdict(choose_threshold(labels, probs, beta, rule))
    report = recall_report(labels, probs, search["threshold"]) if labels.size else {}
    return {
        "fbeta": search["fbeta"],
        "threshold": search["threshold"],
        "precision": search["precision"],
        "recall": search["recall"],
        "recall_ci_low": _finite(report.get("recall_ci_low")),
        "recall_ci_high": _finite(report.get("recall_ci_high")),
        "read_share": _finite(report.get("read_share")),
        "wss": _finite(report.get("wss")),
        "includes": report.get("includes"),
        "includes_found": report.get("includes_found"),
        "recall_bound": search["recall_bound"],
        "recall_target_certified": search["certified"],
        "roc_auc": _or_none(roc_auc_score, labels, probs),
        "average_precision": _or_none(average_precision_score, labels, probs) if labels.any() else None,
        "wss_95": _or_none(wss_at_recall, labels, probs),
        "all_positive_fbeta": all_positive_fbeta(labels, beta),
    }


def _finite(value):
    return None if value is None or not np.isfinite(value) else float(value)


def sigmoid(logits):
    """Probabilities from logits, in float64 (ties stay ties)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))


def recall_sentence(results):
    """One line a review team can quote, from a results dict (K-fold: the honest OOF figures; single run: the
    validation figures), e.g. `honest OOF recall 22/23 = 0.957 (95% CI 0.781-0.999), read 12.3% of records,
    WSS 0.830; threshold: best F7`, then the test set's expected missed includes when there is one."""
    prefix = "honest_oof_" if "honest_oof_recall" in results else "eval_"
    recall = results.get(f"{prefix}recall")
    if recall is None:
        return ""
    what = "honest OOF recall" if prefix == "honest_oof_" else "validation recall"
    found, known = results.get(f"{prefix}includes_found"), results.get(f"{prefix}includes")
    counts = f"{found}/{known} = " if found is not None and known is not None else ""
    low, high = results.get(f"{prefix}recall_ci_low"), results.get(f"{prefix}recall_ci_high")
    interval = f" (95% CI {low:.3f}-{high:.3f})" if low is not None and high is not None else ""
    line = f"{what} {counts}{recall:.3f}{interval}"
    if results.get(f"{prefix}read_share") is not None:
        line += f", read {results[f'{prefix}read_share']:.1%} of records, WSS {results[f'{prefix}wss']:.3f}"
    objective = results.get("threshold_objective")
    if objective:
        rule = ThresholdArguments(objective, results.get("target_recall"), results.get("recall_confidence"))
        line += f"; threshold: {rule.describe(results.get('beta', 7.0))}"
        certified = results.get("honest_recall_target_certified", results.get(f"{prefix}recall_target_certified"))
        if certified is False:
            line += " (NOT certified: too few includes; each threshold keeps every include it was chosen on)"
    missed = results.get("expected_missed", results.get("predict_expected_missed"))
    if missed is not None:
        p = "" if "expected_missed" in results else "predict_"
        line += (
            f"\ntest set: {results.get(p + 'predicted_includes', results.get('predict_includes'))} predicted "
            f"includes; expected missed includes {missed:.1f} ({results[p + 'expected_missed_low']:.1f}-"
            f"{results[p + 'expected_missed_high']:.1f}), assuming the test records are like the held-out ones"
        )
    return line
