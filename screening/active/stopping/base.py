"""The stopping-rule interface: what a rule sees (`ReadingState`), what it answers (`Decision`), the rule class
every rule derives from, and the registry that names them.

A rule is one class: its hyperparameters in `__init__` (target recall, confidence, ...), `decide(state)` for a
review in progress, and `first_stop(reading, seed)` for a simulated run (default: `decide` where a review asks the
rules, `checkpoints`, and the first point where it says stop). Adding a rule: subclass `StoppingRule`, set `name`,
`guarantee`, `assumption` (and `needs_scores`; `arguments` for a hyperparameter a `StoppingArguments` flag sets),
decorate with `@register`, and add one test.
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
        the rule's statistics. Once every record is read nothing can be missed: every rule says stop, recall 1."""
        decision = self.decide(state)
        if state.unread == 0:
            decision = Decision(True, 1.0, (1.0, 1.0), {**decision.detail, "status": "every record read"})
        return {
            "stop": bool(decision.stop),
            "recall_estimate": decision.recall_estimate,
            "interval": list(decision.interval) if decision.interval is not None else None,
            "assumption": self.assumption,
            "guarantee": self.guarantee,
            **decision.detail,
        }

    def first_stop(self, reading, seed=0):
        """The first point of a simulated run (`evaluate.SimulatedReading`) where the rule stops, or None: the rule is
        asked wherever a review would ask it (`checkpoints`), so a rule that says stop for a moment stops there (a
        review would have; a rule's verdict can turn back to go on as includes come)."""
        for point in checkpoints(reading, self.needs_scores):
            if self.stops(reading.state(point)):
                return reading.stop_point(point, self.decide(reading.state(point)))
        return None

    def stops(self, state) -> bool:
        """Whether the rule says stop (`decide(state).stop`; a rule may answer it faster)."""
        return bool(self.decide(state).stop)


def checkpoints(reading, needs_scores=True, share=0.01):
    """Where a review asks the rules: after each batch, i.e. at each retrain, and every ceil(`share` x N) records
    in between (the scores there are the last retrain's). A stream with no retrains (one read elsewhere) is asked
    after every record by the rules that read labels only, and never by the rules that need scores."""
    if not reading.retrain_points:
        return [] if needs_scores else list(range(1, reading.records + 1))
    step = max(math.ceil(share * reading.records), 1)
    first = reading.retrain_points[0]
    return sorted(set(reading.retrain_points) | set(range(first, reading.records + 1, step)))


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
