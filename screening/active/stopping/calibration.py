"""Probabilities of inclusion from a ranker's scores, for the rules that read them."""

import numpy as np
from scipy.special import expit


def probabilities(state):
    """(read, unread) probabilities of inclusion at the last retrain: the scores Platt-scaled on the records read
    (a logistic regression of their labels on their scores; the rankers give margins or uncalibrated probabilities,
    and a linear SVM's margins can lie in [0, 1] too). Kept in the state's cache.

    The ranker was trained on these records, so its scores of them are overconfident (at times it expects 1
    include left where 24 are). Calibrating instead on each read record's score from the retrain that chose it
    (before its label trained the ranker) was measured on 39 CLEF 2017 runs and is worse: reading only ever
    labels the top of each ranking, so the fit extrapolates to the unread bulk and expected ~10x the includes
    left (median), against ~0.6x here."""
    if "probabilities" not in state.cache:
        state.cache["probabilities"] = _probabilities(state)
    return state.cache["probabilities"]


def _probabilities(state):
    read, unread = np.asarray(state.read_scores, float), np.asarray(state.unread_scores, float)
    labels = state.labels
    if labels.min() == labels.max():
        constant = float(labels.mean())
        return np.full(read.size, constant), np.full(unread.size, constant)
    a, b = platt(read, labels)
    return expit(a * read + b), expit(a * unread + b)


def platt(scores, labels, iterations=50, ridge=1e-3):
    """Platt scaling's (a, b) of P(include) = expit(a x score + b), fitted by Newton's method with Platt's target
    smoothing ((positives + 1) / (positives + 2) and 1 / (negatives + 2) in place of 1 and 0)."""
    labels = np.asarray(labels, dtype=np.float64)
    positives, negatives = labels.sum(), labels.size - labels.sum()
    target = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    x = np.column_stack([scores, np.ones_like(scores)])
    w = np.array([1.0, float(np.log((positives + 1) / (negatives + 1)))])
    for _ in range(iterations):
        p = expit(x @ w)
        gradient = x.T @ (p - target) + ridge * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])
