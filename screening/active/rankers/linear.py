"""A ranker made of a view, a classifier and a weighting of the includes."""

import numpy as np
from sklearn.base import BaseEstimator, clone

from .views import EncoderSettings
from .weighting import ClassWeighting


class Ranker(BaseEstimator):
    """What every ranker does: `prepare(frame, encoder, seed)` once per search (features of every record, no
    labels), then `fit_score(rows, labels)` at every retrain: fit on the labelled `rows`, return one score per
    record of `frame` (higher = read sooner). Hyperparameters are `__init__` parameters (scikit-learn's contract:
    get_params/set_params)."""

    def prepare(self, frame, encoder=None, seed=0):
        raise NotImplementedError

    def fit_score(self, rows, labels):
        raise NotImplementedError


class LinearRanker(Ranker):
    """`view` computed once, `classifier` refitted on the labelled rows weighted by `weighting` at every retrain."""

    def __init__(self, view, classifier, weighting=None):
        self.view = view
        self.classifier = classifier
        self.weighting = ClassWeighting() if weighting is None else weighting

    def prepare(self, frame, encoder=None, seed=0):
        self.features = self.view.fit_transform(frame, encoder or EncoderSettings())
        return self

    def fit_score(self, rows, labels):
        model = clone(self.classifier)
        model.fit(self.features[rows], labels, sample_weight=self.weighting.weights(labels))
        if hasattr(model, "predict_proba"):
            return model.predict_proba(self.features)[:, 1]
        return np.asarray(model.decision_function(self.features))
