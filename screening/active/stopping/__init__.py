"""When prioritised screening can stop, and what recall it can then claim.

Every rule (one class, `base.StoppingRule`) sees the reading so far (`ReadingState`: the labels in reading order,
the records in the search, the ranker's scores at the last retrain) and answers a `Decision`: stop or go on, its
recall estimate with an interval where it has one. Each states its assumption and its guarantee:

    certified   hypergeometric (Callaghan & Mueller-Hansen 2020), audit (a random sample of the unread records),
                qbcb (Lewis, Yang & Frieder 2021; the target method of Cormack & Grossman 2016; simulation only)
    estimate    counting_process (Stevenson & Bin-Hezam 2024), counting_process_classifier (Bin-Hezam &
                Stevenson 2023), quant and quant_ci (Yang, Lewis & Frieder 2021)
    none        knee (Cormack & Grossman 2016), consecutive_excludes, read_share

`RULES` maps names to classes; `build_rules(stop_args, target)` makes them; `evaluate` measures them on
simulated runs. The recall frontier at any point: the highest recall target the hypergeometric test certifies
at the chosen confidence, and the confidence at which the chosen target holds.
"""

from dataclasses import dataclass, field

from ...errors import ScreeningInputError
from . import counting, evaluate, heuristics, hypergeometric, quant, sample  # noqa: F401  (register the rules)
from .base import RULES, Decision, ReadingState, StoppingRule, StopPoint, build_rules, register
from .heuristics import consecutive_excludes_stop
from .hypergeometric import (
    excludes_to_certify,
    frontier,
    hypergeometric_p,
    hypergeometric_p_totals,
)
from .sample import audit_bound, audit_sample_size, audit_stop, floor_read_share

ORDER = ("hypergeometric", "audit", "qbcb", "counting_process", "counting_process_classifier", "quant", "quant_ci",
         "knee", "consecutive_excludes", "read_share")  # fmt: skip
for _name in ORDER + tuple(n for n in list(RULES) if n not in ORDER):  # the registry in this order, then the rest
    RULES[_name] = RULES.pop(_name)

__all__ = [
    "RULES",
    "Decision",
    "ReadingState",
    "StopPoint",
    "StoppingArguments",
    "StoppingRule",
    "audit_bound",
    "audit_sample_size",
    "audit_stop",
    "build_rules",
    "consecutive_excludes_stop",
    "evaluate",
    "excludes_to_certify",
    "floor_read_share",
    "frontier",
    "hypergeometric_p",
    "hypergeometric_p_totals",
    "register",
]


@dataclass
class StoppingArguments:
    """The recall a review wants, the confidence it must hold at, and the heuristics' settings."""

    target_recall: float = field(default=0.95, metadata={"help": "Recall the stopping rules must reach, in (0, 1)."})
    confidence: float = field(default=0.95, metadata={"help": "Confidence of the certified rules, in (0, 1)."})
    consecutive_excludes: int = field(
        default=50, metadata={"help": "Heuristic: stop after this many excludes in a row (no guarantee)."}
    )
    read_share: float = field(
        default=0.5, metadata={"help": "Heuristic: stop after reading this share of the records (no guarantee)."}
    )
    audit_after: int = field(
        default=200,
        metadata={
            "help": "The audit rule draws its random sample of the unread records once ranked reading has gone "
            "this many excludes in a row (and again after each failed audit)."
        },
    )

    def check(self):
        for name in ("target_recall", "confidence"):
            if not 0 < getattr(self, name) < 1:
                raise ScreeningInputError(f"--{name} must be in (0, 1); got {getattr(self, name)}")
        if not 0 < self.read_share <= 1:
            raise ScreeningInputError(f"--read_share must be in (0, 1]; got {self.read_share}")
        for name in ("consecutive_excludes", "audit_after"):
            if getattr(self, name) < 1:
                raise ScreeningInputError(f"--{name} must be at least 1; got {getattr(self, name)}")
        return self
