"""Counting-process rules: the includes found per position are a Poisson process whose rate falls along the
ranking; the includes left are the integral of the fitted rate over the unread positions."""

import math

import numpy as np
from scipy.stats import poisson

from .base import Decision, ReadingState, StoppingRule, checkpoints, register
from .calibration import probabilities

# the rate's decay per record, b, searched over b x n in [1e-3, 1e4] (and b = 0: a constant rate)
_DECAYS = np.concatenate([[0.0], np.logspace(-3, 4, 57)])


def fit_rate(counts, rate="best"):
    """Maximum-likelihood fit of a falling rate to `counts` (includes, or expected includes, per position 1..n):
    hyperbolic a / (1 + b x) or exponential a exp(-b x); 'best': the one of the two with the higher likelihood
    (both have two parameters). For each b on a grid the best a is closed-form (sum of counts / sum of the
    shape); the b of the highest Poisson log-likelihood wins. Returns (a, b, rate, log-likelihood)."""
    if rate == "best":
        return max((fit_rate(counts, r) for r in ("hyperbolic", "exponential")), key=lambda fit: fit[3])
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.size
    x = np.arange(1, n + 1, dtype=np.float64)
    decays = _DECAYS if rate == "hyperbolic" else _DECAYS[_DECAYS <= 50]  # exp(-50) ~ 2e-22: gone; no overflow
    b = decays[:, None] / n
    log_shape = -np.log1p(b * x) if rate == "hyperbolic" else -b * x
    shape = np.exp(log_shape)
    total = counts.sum()
    a = total / shape.sum(axis=1)
    loglik = total * np.log(a) + (log_shape * counts).sum(axis=1) - total
    best = int(np.argmax(loglik))
    return float(a[best]), float(b[best, 0]), rate, float(loglik[best])


def rate_integral(a, b, start, end, rate="hyperbolic"):
    """The expected includes at positions start+1 .. end under the fitted rate (its integral from start to end)."""
    if b == 0:
        return a * (end - start)
    if rate == "hyperbolic":
        return a / b * np.log((1 + b * end) / (1 + b * start))
    return a / b * (np.exp(-b * start) - np.exp(-b * end))


def includes_needed(share_read, start=20, step=0.025):
    """The includes a counting process needs before it may stop, by the share of the records read: Bin-Hezam &
    Stevenson's "dynamic" minimum (their code: 20 includes at 2.5% read, cut by the share read at each further
    2.5% step: 19 at 5%, 16 at 10%, 8 at 20%, 0 from 35%), so a small search is not read to its end for want of a
    fixed count of records or includes."""
    needed = start
    for i in range(1, int(share_read / step + 1e-9)):  # cut after each step passed, before the current one
        needed = int(needed - round(i * step, 3) * needed)
    return needed


def poisson_decision(found, remaining, target_recall, confidence, detail):
    """Stop when found / (found + the upper `confidence` quantile of Poisson(remaining)) >= target; the recall
    estimate is found / (found + remaining), the interval from the two Poisson quantiles."""
    high = float(poisson.ppf(confidence, remaining))
    low = float(poisson.ppf(1 - confidence, remaining))
    interval = (found / (found + high), found / (found + low) if found + low else 1.0)
    detail = {**detail, "remaining_expected": float(remaining), "remaining_at_most": high}
    return Decision(found / (found + high) >= target_recall, found / (found + remaining), interval, detail)


@register
class CountingProcessRule(StoppingRule):
    """Stevenson & Bin-Hezam, "Stopping Methods for Technology Assisted Reviews based on Point Processes", ACM
    TOIS 42(3), 2024: a rate (hyperbolic or exponential; by default whichever fits better) fitted to the includes
    found per position by Poisson maximum likelihood;
    the includes left = the rate's integral over the unread positions; stop when found / (found + its upper
    Poisson quantile at `confidence`) >= target. Not applied before `min_read` records nor before
    `includes_needed(share read)` includes (a rate fitted on a few records or includes says little; both relative
    to the search's size as in the authors' code, so a 64-record search is not read to its end). As published, the
    includes left are the best-fitting rate's; its uncertainty is not added (a likelihood-ratio or posterior
    predictive bound on the decay met 0.9 in 97% of 39 CLEF 2017 runs but read 14% of N more)."""

    name = "counting_process"
    guarantee = "estimate"
    assumption = "includes arrive as a Poisson process whose rate falls along the ranking as the fitted curve"

    def __init__(self, target_recall=0.95, confidence=0.95, rate="best", min_read=10):
        super().__init__(target_recall, confidence)
        self.rate = rate
        self.min_read = min_read

    def counts(self, state):
        """What the rate is fitted to: the labels read."""
        return state.labels

    def remaining(self, state):
        """The includes expected in the unread positions: the fitted rate's integral there."""
        key = ("rate", self.name, self.rate)
        if key not in state.cache:
            a, b, rate, _ = fit_rate(self.counts(state), self.rate)
            state.cache[key] = (
                rate_integral(a, b, state.read, state.records, rate),
                {"rate": rate, "rate_a": a, "rate_b": b},
            )
        return state.cache[key]

    def waiting(self, state):
        """What the rule still waits for before it gives an estimate (a status line), or None once it gives one."""
        if state.found == 0:
            return "no include found yet"
        if state.read < min(self.min_read, state.records):
            return f"waits for {self.min_read} records read"
        needed = includes_needed(state.read / state.records)
        if state.found < needed:  # a rate fitted on so few includes says nothing yet: no estimate either
            return f"waits for {needed} includes at this share read"
        return None

    def decide(self, state):
        status = self.waiting(state)
        if status:
            return Decision(False, detail={"status": status})
        remaining, detail = self.remaining(state)
        return poisson_decision(state.found, remaining, self.target_recall, self.confidence, detail)


@register
class CountingProcessClassifierRule(CountingProcessRule):
    """Bin-Hezam & Stevenson, "Combining Counting Processes and Classification Improves a Stopping Rule for
    Technology Assisted Review", Findings of EMNLP 2023: the classifier's calibrated probabilities of the unread
    records (in score order) extend the labels read, and the counting process's rate is fitted over both, so the
    includes the classifier still expects shape the rate over the unread positions. Our reading of the paper;
    the probabilities are the ranker's scores calibrated on the read records (calibration.probabilities)."""

    name = "counting_process_classifier"
    needs_scores = True
    assumption = (
        "includes arrive as a Poisson process whose rate, fitted to the labels read and the classifier's "
        "calibrated probabilities of the unread records, falls along the ranking"
    )

    def decide(self, state):
        if state.unread_scores is None or state.found == 0:
            return Decision(False, detail={"status": "no ranker scores yet"})
        return super().decide(state)

    def counts(self, state):
        """The labels read, then the unread records' calibrated probabilities from the highest score down."""
        return np.concatenate([state.labels, np.sort(probabilities(state)[1])[::-1]])

    def remaining(self, state):
        remaining, detail = super().remaining(state)
        return remaining, {**detail, "classifier_remaining": float(probabilities(state)[1].sum())}


@register
class CountingProcessAgreementRule(StoppingRule):
    """Stop when both counting processes say stop: `counting_process` (the rate fitted to the labels read) and
    `counting_process_classifier` (fitted over the classifier's calibrated probabilities of the unread records
    too). "Stop when two agree": the two estimates fail in different places (on 19 reviews x 10 seeds at 0.95
    the first fell short on the six shared reviews with few includes, the second on CLEF topics with many), so
    requiring both buys reliability for a little more reading. The recall estimate and interval are the more
    cautious of the two."""

    name = "counting_process_agree"
    guarantee = "estimate"
    needs_scores = True
    assumption = (
        "both counting processes' assumptions: includes arrive at a falling rate, fitted to the labels read and, "
        "for the second, to the classifier's calibrated probabilities of the unread records"
    )

    def __init__(self, target_recall=0.95, confidence=0.95, rate="best", min_read=10):
        super().__init__(target_recall, confidence)
        self.rate = rate
        self.min_read = min_read

    def decide(self, state):
        decisions = {
            rule.name: rule.decide(state)
            for rule in (
                CountingProcessRule(self.target_recall, self.confidence, self.rate, self.min_read),
                CountingProcessClassifierRule(self.target_recall, self.confidence, self.rate, self.min_read),
            )
        }
        stated = [d for d in decisions.values() if d.recall_estimate is not None]
        cautious = min(stated, key=lambda d: d.recall_estimate) if stated else Decision(False)
        detail = {f"{name}_stop": bool(d.stop) for name, d in decisions.items()}
        return Decision(all(d.stop for d in decisions.values()), cautious.recall_estimate, cautious.interval, detail)


@register
class SteadyCountingProcessRule(CountingProcessRule):
    """The counting process, stopping only once it has said stop after each of the last ceil(`window` x N) records
    read. A fitted rate can say stop for a moment after a run of excludes and go on again at the next include; a
    review asks after every batch, so it would stop there (on 19 reviews x 10 seeds at 0.9, 1 run in 6 of the
    counting process's stops fell short so). Requiring the verdict to hold over a share of the search lets a late
    cluster of includes show itself first. The exponential rate and `window` 0.05 were chosen on seeds 0-9 of the
    13 CLEF topics alone (at 0.8, 0.9 and 0.95 the least total overshoot reaching the target in >= 95% of the runs);
    the six shared reviews, and seeds 10-19 of all 19, were left to check it."""

    name = "counting_process_steady"
    assumption = (
        "includes arrive as a Poisson process whose rate falls along the ranking as the fitted exponential, and "
        "its verdict held over the last records read"
    )

    def __init__(self, target_recall=0.95, confidence=0.95, rate="exponential", min_read=10, window=0.05):
        super().__init__(target_recall, confidence, rate, min_read)
        self.window = window

    def decide(self, state):
        return self.held(state, lambda n: ReadingState(state.labels[:n], state.records))

    def first_stop(self, reading, seed=0):
        """As `StoppingRule.first_stop`, with each prefix's rate fitted once per run (the windows of consecutive
        checkpoints overlap)."""
        prefixes = {}

        def prefix(n):
            if n not in prefixes:
                prefixes[n] = ReadingState(reading.labels[:n], reading.records)
            return prefixes[n]

        for point in checkpoints(reading, self.needs_scores):
            decision = self.held(prefix(point), prefix)
            if decision.stop:
                return reading.stop_point(point, decision)
        return None

    def held(self, state, prefix):
        """The counting process's decision on `state`, a stop only once it has said stop after each of the last
        ceil(`window` x N) records read; `prefix(n)` is the state after n records."""
        decision = super().decide(state)
        needed = math.ceil(self.window * state.records)
        streak = 0  # the records read, up to now, after each of which the counting process said stop
        while decision.stop and streak < needed and streak < state.read:
            streak += 1
            if not super().decide(prefix(state.read - streak)).stop:
                break
        steady = decision.stop and (streak >= needed or state.unread == 0)  # nothing left to wait for
        detail = {**decision.detail, "stop_streak": streak, "streak_needed": needed}
        return Decision(steady, decision.recall_estimate, decision.interval, detail)
