"""Rules with no guarantee: so many excludes in a row, a share of the records read, and the knee method."""

import math

import numpy as np

from .base import Decision, StoppingRule, register


def trailing_excludes(labels):
    """Excludes read since the last include (all of them before one)."""
    labels = np.asarray(labels, dtype=np.int64)
    hits = np.flatnonzero(labels)
    return int(labels.size - (hits[-1] + 1)) if hits.size else int(labels.size)


def consecutive_excludes_stop(labels, run_length):
    """The first point (records read) after `run_length` excludes in a row, or None."""
    labels = np.asarray(labels, dtype=np.int64)
    last_include = np.maximum.accumulate(np.where(labels == 1, np.arange(1, labels.size + 1), 0))
    run = np.arange(1, labels.size + 1) - last_include
    reached = np.flatnonzero(run >= run_length)
    return int(reached[0]) + 1 if reached.size else None


@register
class ConsecutiveExcludesRule(StoppingRule):
    """Stop after `run_length` excludes in a row: the heuristic many reviews use."""

    name = "consecutive_excludes"
    assumption = "nothing: no guarantee (a ranking that lost the last includes stops as early)"
    arguments = {"run_length": "consecutive_excludes"}

    def __init__(self, target_recall=0.95, confidence=0.95, run_length=50):
        super().__init__(target_recall, confidence)
        self.run_length = run_length

    def decide(self, state):
        run = trailing_excludes(state.labels)
        return Decision(run >= self.run_length, detail={"excludes_in_a_row": run})

    def first_stop(self, reading, seed=0):
        point = consecutive_excludes_stop(reading.labels, self.run_length)
        return None if point is None else reading.stop_point(point, self.decide(reading.state(point)))


@register
class ReadShareRule(StoppingRule):
    """Stop after reading `share` of the records."""

    name = "read_share"
    assumption = "nothing: no guarantee"
    arguments = {"share": "read_share"}

    def __init__(self, target_recall=0.95, confidence=0.95, share=0.5):
        super().__init__(target_recall, confidence)
        self.share = share

    def decide(self, state):
        share = state.read / state.records
        return Decision(state.read >= self.share * state.records, detail={"read_share": share})

    def first_stop(self, reading, seed=0):
        point = min(max(math.ceil(self.share * reading.records), 1), reading.records)
        return reading.stop_point(point, self.decide(reading.state(point)))


def knee(labels):
    """The knee of the gain curve (includes found against records read): the point farthest above the line from
    the origin to the last point, on the curve normalised to the unit square (Satopaa et al.'s Kneedle, as
    Cormack & Grossman use). Returns (records read at the knee, includes found there)."""
    gains = np.cumsum(np.asarray(labels, dtype=np.int64))
    n, r = gains.size, gains[-1]
    positions = np.arange(1, n + 1)
    at = int(np.argmax(gains / r - positions / n))
    return int(positions[at]), int(gains[at])


@register
class KneeRule(StoppingRule):
    """The knee method (Cormack & Grossman, "Engineering Quality and Reliability in Technology-Assisted Review",
    SIGIR 2016), with their adjustments: at s records read with r includes, find the knee; the slope ratio
    rho = (r_knee / knee) / ((r - r_knee + 1) / (s - knee)); stop when s >= 150 and rho >= 156 - min(r, 150)
    (6 once 150 includes are found; few includes need a much sharper knee). `min_read` stays their absolute 150
    (their adjustment is stated in records; on a smaller search the rule reads it all): a rule with no guarantee,
    never recommended."""

    name = "knee"
    assumption = "the gain curve flattens once the includes are found: no guarantee"

    def __init__(self, target_recall=0.95, confidence=0.95, min_read=150, ratio=6.0):
        super().__init__(target_recall, confidence)
        self.min_read = min_read
        self.ratio = ratio

    def decide(self, state):
        labels, found = state.labels, state.found
        if state.read < self.min_read or found == 0:
            return Decision(False, detail={"slope_ratio": None})
        position, gained = knee(labels)
        if position >= state.read:
            return Decision(False, detail={"slope_ratio": None, "knee": position})
        rho = (gained / position) / ((found - gained + 1) / (state.read - position))
        needed = self.ratio + 150 - min(found, 150)
        return Decision(
            bool(rho >= needed), detail={"slope_ratio": float(rho), "ratio_needed": needed, "knee": position}
        )
