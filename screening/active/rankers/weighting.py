"""The weighting of the includes in the fit of a ranker's classifier."""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.class_weight import compute_sample_weight


def balanced_weights(labels, include_weight=1.0):
    """Class-balanced sample weights, the includes' then multiplied by `include_weight`; mean 1."""
    weights = compute_sample_weight("balanced", labels) * np.where(np.asarray(labels) == 1, include_weight, 1.0)
    return weights * (weights.size / weights.sum())


class ClassWeighting(BaseEstimator):
    """Sample weights of the labelled records: the two classes weigh the same in all (`balanced`; a handful of
    includes among many excludes must still count), then each include `include_weight` x more."""

    def __init__(self, balanced=True, include_weight=1.0):
        self.balanced = balanced
        self.include_weight = include_weight

    def weights(self, labels):
        if self.balanced:
            return balanced_weights(labels, self.include_weight)
        weights = np.where(np.asarray(labels) == 1, self.include_weight, 1.0)
        return weights * (weights.size / weights.sum())
