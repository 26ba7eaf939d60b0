"""Library code of the screening toolkit: data loading and checks, metrics, atomic writers."""

from .data import ScreeningInputError, build_texts, load_split, read_table
from .metrics import best_threshold, honest_oof_fbeta, screening_metrics, sigmoid, threshold_curve, wss_at_recall

__all__ = [
    "ScreeningInputError",
    "best_threshold",
    "build_texts",
    "honest_oof_fbeta",
    "load_split",
    "read_table",
    "screening_metrics",
    "sigmoid",
    "threshold_curve",
    "wss_at_recall",
]
