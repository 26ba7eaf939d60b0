"""The screening model, registered with the Auto classes.

Files in this folder import only torch, transformers and each other: `save_pretrained` copies
them next to the weights, so `from_pretrained(..., trust_remote_code=True)` works without this repo.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .configuration_screening import ScreeningConfig
from .heads import HEADS, ScreeningHead
from .losses import focal_loss, screening_loss, smooth_labels
from .modeling_screening import ScreeningForSequenceClassification, ScreeningPreTrainedModel

AutoConfig.register(ScreeningConfig.model_type, ScreeningConfig, exist_ok=True)
AutoModel.register(ScreeningConfig, ScreeningForSequenceClassification, exist_ok=True)
AutoModelForSequenceClassification.register(ScreeningConfig, ScreeningForSequenceClassification, exist_ok=True)
ScreeningConfig.register_for_auto_class()
ScreeningForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "HEADS",
    "ScreeningConfig",
    "ScreeningForSequenceClassification",
    "ScreeningHead",
    "ScreeningPreTrainedModel",
    "focal_loss",
    "screening_loss",
    "smooth_labels",
]
