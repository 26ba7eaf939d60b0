"""Losses against values computed by hand on fixed tensors."""

import math

import pytest
import torch

from modeling.configuration_screening import ScreeningConfig
from modeling.losses import screening_loss

LOGITS = torch.tensor([2.0, -1.0, 0.0, 0.5])
LABELS = torch.tensor([1.0, 0.0, 1.0, 0.0])


def sig(x):
    return 1 / (1 + math.exp(-x))


def bce_terms(targets, pos_weight=1.0):
    """-[w y log p + (1 - y) log(1 - p)] per record, written out."""
    return [
        -(pos_weight * y * math.log(sig(z)) + (1 - y) * math.log(1 - sig(z))) for z, y in zip(LOGITS.tolist(), targets)
    ]


def loss(**fields):
    return screening_loss(LOGITS.reshape(-1, 1), LABELS, ScreeningConfig(**fields)).item()


def test_bce_by_hand():
    expected = sum(bce_terms(LABELS.tolist())) / 4
    assert loss(loss_type="bce") == pytest.approx(expected, rel=1e-6)
    # log(1+e^-2) + log(1+e^-1) + log 2 + log(1+e^0.5), over 4
    assert expected == pytest.approx((0.126928 + 0.313262 + 0.693147 + 0.974077) / 4, abs=1e-6)


def test_weighted_bce_by_hand():
    expected = sum(bce_terms(LABELS.tolist(), pos_weight=3.0)) / 4
    assert loss(loss_type="weighted_bce", pos_weight=3.0) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="pos_weight"):
        loss(loss_type="weighted_bce")


def test_focal_by_hand():
    alpha, gamma = 0.25, 2.0
    terms = []
    for z, y in zip(LOGITS.tolist(), LABELS.tolist()):
        p_t = sig(z) if y == 1 else 1 - sig(z)
        a_t = alpha if y == 1 else 1 - alpha
        terms.append(-a_t * (1 - p_t) ** gamma * math.log(p_t))
    assert loss(loss_type="focal", focal_alpha=alpha, focal_gamma=gamma) == pytest.approx(sum(terms) / 4, rel=1e-6)
    # gamma 0 and alpha 0.5 is half the plain BCE
    assert loss(loss_type="focal", focal_alpha=0.5, focal_gamma=0.0) == pytest.approx(loss(loss_type="bce") / 2)


def test_label_smoothing_by_hand():
    s = 0.2
    smoothed = [y * (1 - s) + s / 2 for y in LABELS.tolist()]  # 1 -> 0.9, 0 -> 0.1
    expected = sum(bce_terms(smoothed)) / 4
    assert loss(loss_type="bce", label_smoothing=s) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        ScreeningConfig(label_smoothing=1.0)
