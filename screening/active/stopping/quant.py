"""Quant and QuantCI (Yang, Lewis & Frieder, "Heuristic Stopping Rules for Technology-Assisted Review", DocEng
2021): the recall estimate is the classifier's expected includes among the read records over its expected
includes in the whole search."""

import numpy as np

from .base import Decision, StoppingRule, register
from .calibration import probabilities


@register
class QuantRule(StoppingRule):
    """Quant: recall estimate = sum of p over the read records / sum of p over every record (p: the ranker's
    calibrated probabilities at the last retrain); stop when it reaches the target. `deviations` > 0 gives
    QuantCI's variant: stop when the estimate minus `deviations` standard deviations reaches it (the variance of
    the two sums as sums of independent Bernoulli(p), by the delta method)."""

    name = "quant"
    guarantee = "estimate"
    needs_scores = True
    assumption = "the ranker's calibrated probabilities are right on average over the unread records"
    deviations = 0.0

    def decide(self, state):
        if state.unread_scores is None or state.found == 0:
            return Decision(False, detail={"status": "no ranker scores yet"})
        read, unread = probabilities(state)
        known, left = float(read.sum()), float(unread.sum())
        estimate = known / (known + left) if known + left > 0 else 1.0
        variance = (left**2 * float((read * (1 - read)).sum()) + known**2 * float((unread * (1 - unread)).sum())) / max(
            (known + left) ** 4, 1e-300
        )
        sd = float(np.sqrt(variance))
        interval = (max(estimate - 2 * sd, 0.0), min(estimate + 2 * sd, 1.0))
        detail = {"expected_includes": known + left, "recall_sd": sd}
        return Decision(estimate - self.deviations * sd >= self.target_recall, estimate, interval, detail)


@register
class QuantCIRule(QuantRule):
    """QuantCI: Quant's estimate minus 2 standard deviations must reach the target."""

    name = "quant_ci"
    deviations = 2.0
    assumption = "the ranker's calibrated probabilities are right on average, and includes are independent draws"
