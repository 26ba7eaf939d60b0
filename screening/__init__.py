"""Library code of the screening toolkit: data loading and checks, metrics, atomic writers."""

from .data import ScreeningInputError, build_texts, load_split, read_table
from .metrics import (
    ThresholdArguments,
    best_threshold,
    choose_threshold,
    expected_missed,
    honest_oof,
    honest_oof_fbeta,
    recall_interval,
    recall_lower_bound,
    screening_metrics,
    sigmoid,
    threshold_curve,
    wss_at_recall,
)

__all__ = [
    "ScreeningInputError",
    "ThresholdArguments",
    "best_threshold",
    "build_texts",
    "choose_threshold",
    "expected_missed",
    "honest_oof",
    "honest_oof_fbeta",
    "recall_interval",
    "recall_lower_bound",
    "load_split",
    "read_table",
    "screening_metrics",
    "sigmoid",
    "threshold_curve",
    "wss_at_recall",
]
