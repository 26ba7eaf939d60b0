"""The screening metric as an `evaluate` module: F-beta (beta 7 by default) at the threshold chosen by an exact
search over the scores, or the recall-target rule, with recall bounds and work saved.

Load it by path (no download): `evaluate.load("metrics/screening_fbeta")`. It is a thin wrapper: the figures come
from `screening.metrics.screening_metrics`, the same function run_classification.py's `compute_metrics` calls,
so both give the same numbers for the same inputs.
"""

import datasets
import evaluate
import numpy as np

from screening.metrics import ThresholdArguments, screening_metrics, sigmoid

_DESCRIPTION = """
F-beta of include/exclude predictions for systematic-review screening, at the probability threshold chosen on
these very scores: the exact search over every distinct score for the best F-beta (ties never split; a record
is an include iff p >= t), or, with threshold_objective="recall", the highest threshold whose one-sided exact
(Clopper-Pearson) lower bound on recall reaches target_recall at recall_confidence. Beside F-beta it returns
the threshold, precision, recall with its two-sided 95% interval, the share of records read, WSS at the
threshold and at 95% recall, ROC AUC, average precision and the F-beta of including every record.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): a score per record: the include probability, or the logit with
        `from_logits=True`.
    references (`list` of `int`): the true label per record, 1 = include, 0 = exclude.
    beta (`float`, default 7.0): recall counts beta**2 times precision.
    threshold_objective (`str`, default "fbeta"): "fbeta" (best F-beta) or "recall" (certified recall target).
    target_recall (`float`, default 0.95): recall the "recall" objective must certify.
    recall_confidence (`float`, default 0.95): confidence of that bound (0.5: the point estimate).
    from_logits (`bool`, default False): apply the sigmoid to `predictions` first.
Returns:
    fbeta, threshold, precision, recall, recall_ci_low, recall_ci_high, read_share, wss, includes,
    includes_found, recall_bound, recall_target_certified, roc_auc, average_precision, wss_95,
    all_positive_fbeta (None where undefined, e.g. a single class).
Examples:
    >>> metric = evaluate.load("metrics/screening_fbeta")
    >>> result = metric.compute(predictions=[0.9, 0.4, 0.3, 0.1], references=[1, 0, 1, 0])
    >>> result["fbeta"], result["threshold"], result["recall"]
    (0.9900990099009901, 0.3, 1.0)
"""

_CITATION = """
@misc{screening_fbeta,
  title = {transformers-screening: F-beta with an exact threshold search for systematic-review screening},
  note = {SIGNATE competition 471, "medical paper auto-sorting", scores F-beta with beta 7},
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ScreeningFbeta(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://signate.jp/competitions/471"],
        )

    def _compute(
        self,
        predictions,
        references,
        beta=7.0,
        threshold_objective="fbeta",
        target_recall=0.95,
        recall_confidence=0.95,
        from_logits=False,
    ):
        scores = np.asarray(predictions, dtype=np.float64)
        if from_logits:
            scores = sigmoid(scores)
        rule = ThresholdArguments(threshold_objective, target_recall, recall_confidence).resolved()
        return screening_metrics(np.asarray(references), scores, beta, rule)
