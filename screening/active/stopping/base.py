"""The stopping-rule interface: what a rule sees (`ReadingState`), what it answers (`Decision`), the rule class
every rule derives from, and the registry that names them.

A rule is one class: its hyperparameters in `__init__` (target recall, confidence, ...), `decide(state)` for a
review in progress, and `first_stop(reading, seed)` for a simulated run (default: `decide` at each retrain and
every 1% of the records for rules that need scores, and an exact strided search over every record for the rules
that read labels only). Adding a rule: subclass `StoppingRule`, set `name`, `guarantee`, `assumption` (and
`needs_scores`; `arguments` for a hyperparameter a `StoppingArguments` flag sets), decorate with `@register`, and
add one test.
"""

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

GUARANTEES = ("certified", "estimate", "none")


@dataclass
class ReadingState:
    """The reading so far: the 0/1 `labels` in reading order, out of `records` records in the search, and the
    ranker's scores at the last retrain: `unread_scores` of the records not read, `read_scores` of the read ones
    in reading order (None before the first ranked batch). `audit`: a review's random audit sample, if any."""

    labels: np.ndarray
    records: int
    unread_scores: np.ndarray | None = None
    read_scores: np.ndarray | None = None
    audit: dict | None = None
    cache: dict = field(default_factory=dict, repr=False)  # what several rules compute alike (probabilities, fits)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)

    @property
    def read(self):
        return int(self.labels.size)

    @property
    def found(self):
        return int(self.labels.sum())

    @property
    def unread(self):
        return int(self.records - self.labels.size)


@dataclass
class Decision:
    """A rule's answer: stop or go on, its estimate of the recall reached (None where it has none), an interval
    [low, high] where it has one, and the rule's statistics (`detail`)."""

    stop: bool
    recall_estimate: float | None = None
    interval: tuple[float, float] | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class StopPoint:
    """Where a simulated run stops under a rule: the position in the ranked stream, the records read (more than
    the position when a rule reads a random sample too), the includes found then, and the rule's decision."""

    position: int
    read: int
    found: int
    decision: Decision


class StoppingRule:
    """Base class: `decide` for a review in progress, `first_stop` for a simulated run. Subclasses set `name`,
    `guarantee` ('certified', 'estimate' or 'none'), `assumption` (one line) and `needs_scores`."""

    name: ClassVar[str] = ""
    guarantee: ClassVar[str] = "none"
    assumption: ClassVar[str] = ""
    needs_scores: ClassVar[bool] = False
    in_review: ClassVar[bool] = True  # False: the rule needs what a review does not have (a sample drawn first)
    stride: ClassVar[int] = 100  # label-only rules: tested every `stride` records in simulation, then refined
    arguments: ClassVar[dict] = {}  # hyperparameter -> the `StoppingArguments` field that sets it

    def __init__(self, target_recall=0.95, confidence=0.95):
        self.target_recall = target_recall
        self.confidence = confidence

    @classmethod
    def from_arguments(cls, stop_args, target_recall):
        """The rule with the settings of `StoppingArguments` (confidence, and the fields named in `arguments`) at
        `target_recall`."""
        settings = {name: getattr(stop_args, field) for name, field in cls.arguments.items()}
        return cls(target_recall=target_recall, confidence=stop_args.confidence, **settings)

    def decide(self, state: ReadingState) -> Decision:
        raise NotImplementedError

    def entry(self, state):
        """The verdict a review reports for this rule: stop, recall_estimate, interval, assumption, guarantee and
        the rule's statistics."""
        decision = self.decide(state)
        return {
            "stop": bool(decision.stop),
            "recall_estimate": decision.recall_estimate,
            "interval": list(decision.interval) if decision.interval is not None else None,
            "assumption": self.assumption,
            "guarantee": self.guarantee,
            **decision.detail,
        }

    def first_stop(self, reading, seed=0):
        """The first point of a simulated run (`evaluate.SimulatedReading`) where the rule stops, or None."""
        if self.needs_scores:
            for point in checkpoints(reading):
                decision = self.decide(reading.state(point))
                if decision.stop:
                    return reading.stop_point(point, decision)
            return None
        point = first_true(lambda n: self.decide(reading.state(n)).stop, reading.records, self.stride)
        return None if point is None else reading.stop_point(point, self.decide(reading.state(point)))


def checkpoints(reading, share=0.01):
    """Where a simulated run asks the rules that need scores: at each retrain, and every ceil(`share` x N) records
    in between (a review asks as often; the scores there are the last retrain's)."""
    if not reading.retrain_points:
        return []
    step = max(math.ceil(share * reading.records), 1)
    first = reading.retrain_points[0]
    return sorted(set(reading.retrain_points) | set(range(first, reading.records + 1, step)))


def first_true(test, last, stride):
    """The first n in 1..last with test(n): tested every `stride` records (and at `last`), then, in the window since
    the previous test, every stride / 10, then one by one. Exact unless the test turned true and false again
    between two tests (then a later point is returned)."""
    previous = 0
    for point in sorted(set(range(stride, last + 1, stride)) | {last}):
        if test(point):
            if point - previous > 1:
                window = point - previous - 1
                finer = first_true(lambda n, start=previous: test(start + n), window, max(stride // 10, 1))
                if finer is not None:
                    return previous + finer
            return point
        previous = point
    return None


RULES: dict[str, type[StoppingRule]] = {}


def register(cls):
    """Add a rule class to the registry under its `name`."""
    if cls.guarantee not in GUARANTEES:
        raise ValueError(f"{cls.__name__}.guarantee must be one of {GUARANTEES}")
    RULES[cls.name] = cls
    return cls


def build_rules(stop_args, target_recall=None, names=None, review=False):
    """{name: rule} for the registered rules (or `names`) at `target_recall` (default the arguments' target).
    `review`: only the rules a review in progress can apply."""
    target = stop_args.target_recall if target_recall is None else target_recall
    chosen = names or list(RULES)
    return {
        name: RULES[name].from_arguments(stop_args, target) for name in chosen if not review or RULES[name].in_review
    }
