"""Configuration of the screening classifier: an encoder plus a swappable one-logit head."""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

LOSS_TYPES = ("bce", "weighted_bce", "focal")
THRESHOLD_OBJECTIVES = ("fbeta", "recall")  # as screening.metrics.OBJECTIVES (this package imports nothing else)
AUTO_MAP = {
    "AutoConfig": "configuration_screening.ScreeningConfig",
    "AutoModel": "modeling_screening.ScreeningForSequenceClassification",
    "AutoModelForSequenceClassification": "modeling_screening.ScreeningForSequenceClassification",
}


class ScreeningConfig(PreTrainedConfig):
    r"""
    Configuration of [`ScreeningForSequenceClassification`].

    Args:
        encoder_config (`PreTrainedConfig` or `dict`):
            Config of the encoder (BERT, RoBERTa, DeBERTa, ...). Kept whole so that a saved model
            rebuilds its encoder from this config alone.
        head_type (`str`, defaults to `"cls"`):
            Name of the head in `heads.HEADS` that turns encoder outputs into one logit.
        head_dropout (`float`, defaults to 0.1):
            Dropout before the head's final linear layer.
        cnn_seq_length (`int`, defaults to 512):
            Token axis length of the `cnn` head (its Conv1d input channels); shorter inputs are zero-padded.
        cnn_channels (`int`, defaults to 256):
            Output channels of the `cnn` head's Conv1d.
        cnn_kernel_size (`int`, defaults to 3):
            Kernel size of the `cnn` head's Conv1d (over the hidden axis).
        lstm_hidden_size (`int`, defaults to 256):
            Hidden size of each direction of the `bilstm` head.
        loss_type (`str`, defaults to `"bce"`):
            One of `bce`, `weighted_bce` (uses `pos_weight`) or `focal` (uses `focal_alpha`, `focal_gamma`).
        pos_weight (`float`, *optional*):
            Weight of the positive class in `weighted_bce` (and `bce` when set).
        focal_alpha (`float`, defaults to 0.25):
            Positive-class weight of the focal loss.
        focal_gamma (`float`, defaults to 2.0):
            Focusing parameter of the focal loss.
        label_smoothing (`float`, defaults to 0.0):
            Targets become `y * (1 - s) + s / 2`.
        threshold (`float`, defaults to 0.5):
            Probability threshold chosen on held-out predictions (see `threshold_objective`); a record is
            included iff `p >= threshold`. Prediction uses only this value.
        beta (`float`, defaults to 7.0):
            The beta of the F-beta score the threshold was tuned for (objective `fbeta`).
        threshold_objective (`str`, defaults to `"fbeta"`):
            What the threshold was chosen for: `fbeta` (best F-beta) or `recall` (the highest threshold whose
            one-sided lower confidence bound on recall, from the held-out includes, reaches `target_recall`).
        target_recall (`float`, defaults to 0.95):
            Recall the `recall` objective certifies, in (0, 1].
        recall_confidence (`float`, defaults to 0.95):
            Confidence of the one-sided exact (Clopper-Pearson) recall bound, in (0, 1); 0.5 means the point
            estimate.
        frozen_layers (`int`, defaults to 0):
            Lower encoder layers (with the embeddings) kept frozen in training: only the layers above them and the
            head learn. Their outputs do not change, so training may read them from a cache (`lower_states`
            in `forward`); prediction runs the whole encoder as usual.
        threshold_validation (`dict`, *optional*):
            Figures of the held-out data at `threshold`: `records`, `includes`, `includes_found`, `recall`,
            `recall_ci_low`, `recall_ci_high` (two-sided 95% Clopper-Pearson), `read_share`, `wss`,
            `recall_target_certified`. Used to estimate the includes missed in data screened later.
    """

    model_type = "screening"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: PreTrainedConfig | dict | None = None
    head_type: str = "cls"
    head_dropout: float = 0.1
    cnn_seq_length: int = 512
    cnn_channels: int = 256
    cnn_kernel_size: int = 3
    lstm_hidden_size: int = 256
    loss_type: str = "bce"
    pos_weight: float | None = None
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    threshold: float = 0.5
    beta: float = 7.0
    threshold_objective: str = "fbeta"
    target_recall: float = 0.95
    recall_confidence: float = 0.95
    threshold_validation: dict | None = None
    frozen_layers: int = 0
    auto_map: dict | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None:
            self.id2label = {0: "include"}
            self.label2id = {"include": 0}
        if self.auto_map is None:
            self.auto_map = dict(AUTO_MAP)
        super().__post_init__(**kwargs)
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.threshold_objective not in THRESHOLD_OBJECTIVES:
            raise ValueError(
                f"threshold_objective must be one of {THRESHOLD_OBJECTIVES}, got {self.threshold_objective!r}"
            )
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {self.target_recall}")
        if self.frozen_layers < 0:
            raise ValueError(f"frozen_layers must be >= 0, got {self.frozen_layers}")
        if not 0.0 < self.recall_confidence < 1.0:
            raise ValueError(f"recall_confidence must be in (0, 1), got {self.recall_confidence}")

    @property
    def hidden_size(self):
        """The encoder's hidden size (DeepSpeed sizes its "auto" buckets from `config.hidden_size`)."""
        return self.encoder_config.hidden_size


__all__ = ["ScreeningConfig"]
