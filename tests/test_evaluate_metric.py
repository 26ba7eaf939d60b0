"""The `evaluate` module in metrics/screening_fbeta: loaded offline by path, the same figures as the fine-tune's
compute_metrics for the same scores."""

import evaluate
import numpy as np
import pytest
from transformers import EvalPrediction

from screening.metrics import ThresholdArguments
from screening.pipelines.finetune import make_compute_metrics

from .conftest import REPO

FIELDS = ("fbeta", "threshold", "precision", "recall", "recall_ci_low", "recall_ci_high", "wss", "wss_95")


@pytest.fixture(scope="module")
def metric(tmp_path_factory):
    """Loaded by path with evaluate in offline mode, its module copy in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
        patch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path_factory.mktemp("hf-modules"))
        return evaluate.load(str(REPO / "metrics" / "screening_fbeta"))


def random_scores(seed, n=400, prevalence=0.05):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prevalence).astype(np.int64)
    labels[:2] = [1, 0]
    logits = rng.normal(size=n) + 2.0 * labels
    logits[10:40] = logits[10]  # a tie group: the search never splits it
    return labels, logits.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [7.0, 1.0])
def test_same_figures_as_compute_metrics(metric, seed, beta):
    labels, logits = random_scores(seed)
    expected = make_compute_metrics(beta)(EvalPrediction(predictions=logits, label_ids=labels))
    got = metric.compute(predictions=logits, references=labels, beta=beta, from_logits=True)
    for name in FIELDS:
        assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), name


def test_recall_objective_same_as_compute_metrics(metric):
    labels, logits = random_scores(5, n=2000, prevalence=0.04)
    rule = ThresholdArguments("recall", 0.9, 0.8).resolved()
    expected = make_compute_metrics(7.0, rule)(EvalPrediction(predictions=logits, label_ids=labels))
    got = metric.compute(
        predictions=logits,
        references=labels,
        from_logits=True,
        threshold_objective="recall",
        target_recall=0.9,
        recall_confidence=0.8,
    )
    for name in (*FIELDS, "recall_bound", "recall_target_certified"):
        assert got[name] == pytest.approx(expected[name]), name
    assert got["recall_bound"] >= 0.9 and got["recall_target_certified"] is True


def test_probabilities_by_hand(metric):
    # 0.3 keeps both includes and one exclude: F7 = 50*2 / (50*2 + 49*0 + 1)
    got = metric.compute(predictions=[0.9, 0.4, 0.3, 0.1], references=[1, 0, 1, 0])
    assert got["threshold"] == 0.3 and got["recall"] == 1.0 and got["precision"] == pytest.approx(2 / 3)
    assert got["fbeta"] == pytest.approx(100 / 101)


def test_bad_objective_is_refused(metric):
    with pytest.raises(Exception, match="--threshold_objective must be one of"):
        metric.compute(predictions=[0.5, 0.1], references=[1, 0], threshold_objective="auc")
