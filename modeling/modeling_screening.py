"""A sequence classifier for paper screening: any `AutoModel` encoder, a head from the config, one logit."""

import torch
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.utils import logging

from .configuration_screening import ScreeningConfig
from .heads import HEADS, WeightedLayersHead
from .losses import screening_loss

logger = logging.get_logger(__name__)

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
# What encoder configs call the dropout on attention probabilities (BERT/RoBERTa/DeBERTa; DistilBERT/ModernBERT).
ATTENTION_DROPOUT_FIELDS = ("attention_probs_dropout_prob", "attention_dropout")


def set_attention_dropout(encoder_config, probability):
    """Set the encoder's dropout on attention probabilities, whatever its architecture calls it.

    With 0.0, SDPA runs its fused kernel in training too; with dropout it falls back to computing and
    dropping out the full L x L attention matrix (on a CPU the random mask alone was ~20% of a step).
    """
    names = [n for n in ATTENTION_DROPOUT_FIELDS if hasattr(encoder_config, n)]
    if not names:
        raise ValueError(
            f"the {encoder_config.model_type} encoder config has no attention dropout field "
            f"({' or '.join(ATTENTION_DROPOUT_FIELDS)})"
        )
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"attention dropout must be in [0, 1), got {probability}")
    for name in names:
        setattr(encoder_config, name, probability)


def encoder_layers(encoder):
    """The encoder's stack of layers (`encoder.encoder.layer` in BERT-family encoders: BERT, RoBERTa, ELECTRA...)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or not hasattr(encoder, "embeddings"):
        raise ValueError(f"frozen layers need a BERT-family encoder (embeddings + encoder.layer); got {type(encoder)}")
    return layers


def _head_inputs(outputs, dtype):
    """The encoder outputs a head reads, in the head's dtype (float32 unless the whole model was cast).

    Under bf16 autocast the encoder returns bf16 states (about 3 significant digits); pooling them and computing
    the logit in bf16 would tie distinct records' scores and coarsen the threshold search.
    """

    def cast(value):
        if isinstance(value, tuple):
            return tuple(cast(v) for v in value)
        return value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    return type(outputs)(
        **{k: cast(v) for k, v in outputs.items() if k in ("last_hidden_state", "pooler_output", "hidden_states")}
    )


class ScreeningPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading for the screening models."""

    config: ScreeningConfig
    config_class = ScreeningConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _keep_in_fp32_modules_strict = ["head"]  # the head and its logit stay float32 when the encoder runs in bf16/fp16

    def _init_weights(self, module):
        """Head layers: normal(0, encoder's initializer_range) weights, zero biases; layer weights uniform."""
        std = getattr(self.config.encoder_config, "initializer_range", 0.02)
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, torch.nn.LSTM):
            for name, param in module.named_parameters():
                (init.xavier_uniform_ if "weight" in name else init.zeros_)(param)
        elif isinstance(module, WeightedLayersHead):
            init.zeros_(module.layer_logits)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, attention_dropout=None, **kwargs):
        """Load this project's saved model, or build one around a plain encoder checkpoint.

        A folder or Hub id whose config is not a `ScreeningConfig` (BERT, PubMedBERT, RoBERTa, a
        `*ForMaskedLM` checkpoint, ...) gives its encoder weights to a new model; the head is new and
        initialised by `_init_weights`. Keyword arguments that name `ScreeningConfig` fields
        (`head_type`, `loss_type`, `threshold`, ...) set them in either case. `attention_dropout`, when
        given, replaces the encoder's dropout on attention probabilities (see `set_attention_dropout`).
        """
        hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
        if config is None and not isinstance(pretrained_model_name_or_path, PreTrainedConfig):
            config_dict, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            if config_dict.get("model_type") != ScreeningConfig.model_type:
                return cls.from_encoder(pretrained_model_name_or_path, attention_dropout=attention_dropout, **kwargs)
        if attention_dropout is not None:
            if config is None:
                config, kwargs = cls.config_class.from_pretrained(
                    pretrained_model_name_or_path, return_unused_kwargs=True, **kwargs
                )
                kwargs.update(hub_kwargs)  # the weights come from where the config came from
            set_attention_dropout(config.encoder_config, attention_dropout)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)

    @classmethod
    def from_encoder(cls, encoder_name_or_path, attention_dropout=None, **kwargs):
        """A new model whose encoder weights come from `encoder_name_or_path`; see `from_pretrained`."""
        fields = ScreeningConfig.__dataclass_fields__
        config_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fields and k != "encoder_config"}
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        if attention_dropout is not None:
            hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
            encoder_config = AutoConfig.from_pretrained(
                encoder_name_or_path, trust_remote_code=trust_remote_code, **hub_kwargs
            )
            set_attention_dropout(encoder_config, attention_dropout)
            kwargs["config"] = encoder_config
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **kwargs)
        config = ScreeningConfig(encoder_config=encoder.config.to_dict(), **config_kwargs)
        config._attn_implementation = encoder.config._attn_implementation
        model = cls(config)
        # Take the loaded encoder itself rather than copying its weights: under DeepSpeed ZeRO-3 both models'
        # parameters are partitioned and a state_dict copy would silently keep the random ones.
        model.encoder = encoder
        model.to(encoder.dtype)
        model.head.float()
        new = [n for n, _ in model.named_parameters() if not n.startswith(f"{cls.base_model_prefix}.")]
        logger.warning(
            f"Built a {config.head_type!r} screening model on the encoder of {encoder_name_or_path}; "
            f"newly initialised weights (train them): {', '.join(new)}"
        )
        return model


class ScreeningForSequenceClassification(ScreeningPreTrainedModel):
    """Encoder + head (`config.head_type`) + loss (`config.loss_type`); one logit per record.

    `config.threshold` is the F-beta-tuned probability threshold: a record is included iff
    `sigmoid(logit) >= threshold` (see `predict_labels`).
    """

    def __init__(self, config: ScreeningConfig):
        super().__init__(config)
        if config.head_type not in HEADS:
            raise ValueError(f"head_type must be one of {sorted(HEADS)}, got {config.head_type!r}")
        self.encoder = AutoModel.from_config(config.encoder_config)
        self.head = HEADS[config.head_type](config)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def freeze_lower_layers(self, num_layers=None):
        """Stop gradients in the embeddings and the lowest `num_layers` encoder layers (default
        `config.frozen_layers`, which is set to it): training then moves only the layers above and the head."""
        num_layers = self.config.frozen_layers if num_layers is None else num_layers
        layers = encoder_layers(self.encoder)
        if not 1 <= num_layers < len(layers):
            raise ValueError(f"frozen layers must be between 1 and {len(layers) - 1} (the encoder has {len(layers)})")
        self.config.frozen_layers = num_layers
        for module in (self.encoder.embeddings, *layers[:num_layers]):
            module.requires_grad_(False)

    def _run_layers(self, hidden, attention_mask, start, stop=None):
        config = self.encoder.config
        mask = create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in encoder_layers(self.encoder)[start:stop]:
            hidden = layer(hidden, mask)
        return hidden

    def lower_layer_states(self, input_ids, attention_mask, token_type_ids=None):
        """Output of the embeddings and the `config.frozen_layers` lowest layers (what `forward` reads from
        `lower_states`): `(batch, seq, hidden)`. Run it in eval mode, as the cached states are used."""
        hidden = self.encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        return self._run_layers(hidden, attention_mask, 0, self.config.frozen_layers)

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    def resize_token_embeddings(self, *args, **kwargs):
        embeddings = self.encoder.resize_token_embeddings(*args, **kwargs)
        self.config.encoder_config.vocab_size = embeddings.weight.shape[0]
        return embeddings

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        lower_states=None,
        **kwargs,
    ):
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, seq)`): token ids.
            attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens, 0 for padding.
            token_type_ids (`torch.LongTensor` of shape `(batch, seq)`, *optional*): segment ids, where used.
            position_ids (`torch.LongTensor` of shape `(batch, seq)`, *optional*): position ids.
            inputs_embeds (`torch.Tensor` of shape `(batch, seq, hidden)`, *optional*): instead of `input_ids`.
            labels (`torch.Tensor` of shape `(batch,)`, *optional*): 0/1 labels; when given, the loss is returned.
            output_hidden_states (`bool`, *optional*): also return the encoder's hidden states.
            output_attentions (`bool`, *optional*): also return the encoder's attentions.
            return_dict (`bool`, *optional*): ignored; a `SequenceClassifierOutput` is always returned.
            lower_states (`torch.Tensor` of shape `(batch, seq, hidden)`, *optional*): the output of the frozen
                layers (`lower_layer_states`, e.g. from a cache); only the layers above them run. Needs
                `config.frozen_layers` >= 1 and a head that reads the last layer only.

        Returns:
            `SequenceClassifierOutput` with `logits` of shape `(batch, 1)` and `loss` when `labels` are given.
        """
        reference = next(x for x in (input_ids, lower_states, inputs_embeds) if x is not None)
        if attention_mask is None:
            attention_mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            encoder_inputs["position_ids"] = position_ids
        if lower_states is not None:
            if not self.config.frozen_layers or self.head.needs_hidden_states or output_hidden_states:
                raise ValueError("lower_states needs config.frozen_layers >= 1 and a head reading the last layer only")
            hidden = self._run_layers(lower_states.to(self.dtype), attention_mask, self.config.frozen_layers)
            pooler = getattr(self.encoder, "pooler", None)
            outputs = BaseModelOutputWithPooling(
                last_hidden_state=hidden, pooler_output=pooler(hidden) if pooler is not None else None
            )
        else:
            outputs = self.encoder(
                **encoder_inputs,
                output_hidden_states=bool(self.head.needs_hidden_states or output_hidden_states),
                output_attentions=output_attentions,
                return_dict=True,
            )
        with torch.autocast(device_type=attention_mask.device.type, enabled=False):
            logits = self.head(_head_inputs(outputs, self.head.classifier.weight.dtype), attention_mask)
        loss = screening_loss(logits, labels, self.config) if labels is not None else None
        return SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions if output_attentions else None,
        )

    def predict_labels(self, probabilities):
        """0/1 labels at the tuned threshold: 1 iff `probability >= config.threshold`."""
        return (torch.as_tensor(probabilities) >= self.config.threshold).long()


__all__ = ["ScreeningPreTrainedModel", "ScreeningForSequenceClassification"]
