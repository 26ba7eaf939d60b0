"""Probabilities of inclusion from a ranker's scores, for the rules that read them."""

import numpy as np
from sklearn.linear_model import LogisticRegression


def probabilities(state):
    """(read, unread) probabilities of inclusion at the last retrain: the scores themselves where the ranker gives
    probabilities (all in [0, 1]), else Platt scaling (a logistic regression of the labels read on their scores)."""
    read, unread = np.asarray(state.read_scores, float), np.asarray(state.unread_scores, float)
    if read.size and min(read.min(), unread.min(initial=0.0)) >= 0 and max(read.max(), unread.max(initial=0.0)) <= 1:
        return read, unread
    labels = state.labels
    if labels.min() == labels.max():
        constant = float(labels.mean())
        return np.full(read.size, constant), np.full(unread.size, constant)
    platt = LogisticRegression(C=1.0).fit(read[:, None], labels)
    return platt.predict_proba(read[:, None])[:, 1], platt.predict_proba(unread[:, None])[:, 1] if unread.size else unread
