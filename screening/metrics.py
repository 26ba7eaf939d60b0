"""Screening metrics: exact F-beta threshold search, honest (nested) OOF F-beta, WSS@95.

Convention everywhere: a record is predicted positive iff `p >= t`.
"""

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass
class ThresholdSearch:
    """Best threshold and the figures at it."""

    threshold: float
    fbeta: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int


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
    i = int(np.argmax(curve["fbeta"]))
    tp, fp, fn = int(curve["tp"][i]), int(curve["fp"][i]), int(curve["fn"][i])
    return ThresholdSearch(
        threshold=float(curve["threshold"][i]),
        fbeta=float(curve["fbeta"][i]),
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        tp=tp,
        fp=fp,
        fn=fn,
    )


def fbeta_at(labels, probs, threshold, beta=7.0):
    """F-beta of the labels `p >= threshold`."""
    labels, probs = _as_arrays(labels, probs)
    pred = probs >= threshold
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


def honest_oof_fbeta(labels, probs, folds, beta=7.0):
    """Nested OOF F-beta: fold k is labelled with the best threshold of the other folds' OOF,
    and the confusion counts are pooled. Returns (fbeta, {fold: threshold})."""
    labels, probs = _as_arrays(labels, probs)
    folds = np.asarray(folds).reshape(-1)
    tp = fp = fn = 0
    thresholds = {}
    for k in np.unique(folds):
        inside = folds == k
        t = best_threshold(labels[~inside], probs[~inside], beta).threshold
        pred = probs[inside] >= t
        y = labels[inside] == 1
        tp += int(np.sum(pred & y))
        fp += int(np.sum(pred & ~y))
        fn += int(np.sum(~pred & y))
        thresholds[k.item()] = t
    return float(fbeta_score(tp, fp, fn, beta)), thresholds


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


def screening_metrics(labels, probs, beta=7.0):
    """All figures of a scored set: fbeta at the best threshold, that threshold, precision, recall,
    roc_auc, average_precision, wss_95, all_positive_fbeta (None where undefined, e.g. one class)."""
    labels, probs = _as_arrays(labels, probs)
    search = asdict(best_threshold(labels, probs, beta))
    return {
        "fbeta": search["fbeta"],
        "threshold": search["threshold"],
        "precision": search["precision"],
        "recall": search["recall"],
        "roc_auc": _or_none(roc_auc_score, labels, probs),
        "average_precision": _or_none(average_precision_score, labels, probs) if labels.any() else None,
        "wss_95": _or_none(wss_at_recall, labels, probs),
        "all_positive_fbeta": all_positive_fbeta(labels, beta),
    }


def sigmoid(logits):
    """Probabilities from logits, in float64 (ties stay ties)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))
