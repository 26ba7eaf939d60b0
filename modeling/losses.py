"""Losses on one logit per record: BCE, positive-weighted BCE, focal; all with optional label smoothing."""

import torch
import torch.nn.functional as F


def smooth_labels(labels, smoothing):
    """Targets `y * (1 - s) + s / 2`: 1 -> 1 - s/2, 0 -> s/2."""
    return labels * (1.0 - smoothing) + 0.5 * smoothing


def focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """Mean binary focal loss (Lin et al. 2017): `-a_t (1 - p_t)^gamma log(p_t)`, soft targets allowed."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()


def screening_loss(logits, labels, config):
    """The loss `config.loss_type` names, on `(batch,)` or `(batch, 1)` logits and 0/1 labels."""
    logits = logits.reshape(-1).float()
    targets = smooth_labels(labels.reshape(-1).float(), config.label_smoothing)
    if config.loss_type == "focal":
        return focal_loss(logits, targets, config.focal_alpha, config.focal_gamma)
    if config.loss_type == "weighted_bce" and config.pos_weight is None:
        raise ValueError("loss_type='weighted_bce' needs pos_weight (a number, or 'auto' in run_classification.py)")
    pos_weight = None if config.pos_weight is None else torch.tensor(float(config.pos_weight), device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
