"""Heads: each turns encoder outputs into one logit per record.

Add a head by writing one `ScreeningHead` subclass and adding one line to `HEADS`.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def masked_mean(states, mask):
    """Mean of `states` (batch, seq, hidden) over the real tokens of `mask` (batch, seq)."""
    mask = mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class ScreeningHead(nn.Module):
    """Base head: `pool` gives one feature vector per record, then dropout and a Linear to one logit.

    Subclasses set `needs_hidden_states` when they read all layers, and `feature_size(config)`
    when their features are not `hidden_size` wide.
    """

    needs_hidden_states = False

    def __init__(self, config):
        super().__init__()
        self.hidden_size = config.encoder_config.hidden_size
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(self.feature_size(config), 1)

    def feature_size(self, config):
        return config.encoder_config.hidden_size

    def pool(self, outputs, attention_mask):
        raise NotImplementedError

    def forward(self, outputs, attention_mask):
        """Args:
        outputs: the encoder's `ModelOutput` (`last_hidden_state`, optional `pooler_output`, `hidden_states`).
        attention_mask: `(batch, seq)` tensor, 1 for real tokens.
        Returns: `(batch, 1)` logits.
        """
        return self.classifier(self.dropout(self.pool(outputs, attention_mask)))


class ClsHead(ScreeningHead):
    """First token ([CLS]) of the last layer."""

    def pool(self, outputs, attention_mask):
        return outputs.last_hidden_state[:, 0]


class PoolerHead(ScreeningHead):
    """The encoder's `pooler_output` (dense + tanh over [CLS]), as the competition seed's model."""

    def pool(self, outputs, attention_mask):
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ValueError("head_type='pooler' needs an encoder with a pooler (BERT, RoBERTa); use 'cls' instead")
        return pooled


class MeanHead(ScreeningHead):
    """Mean of the last layer over real tokens."""

    def pool(self, outputs, attention_mask):
        return masked_mean(outputs.last_hidden_state, attention_mask)


class MaxHead(ScreeningHead):
    """Max of the last layer over real tokens."""

    def pool(self, outputs, attention_mask):
        states = outputs.last_hidden_state
        fill = torch.finfo(states.dtype).min
        return states.masked_fill(attention_mask.unsqueeze(-1) == 0, fill).max(1).values


class ClsConcatLast4Head(ScreeningHead):
    """[CLS] of the last four layers, concatenated (fewer when the encoder has fewer)."""

    needs_hidden_states = True

    def feature_size(self, config):
        self.n_layers = min(4, config.encoder_config.num_hidden_layers + 1)
        return self.n_layers * config.encoder_config.hidden_size

    def pool(self, outputs, attention_mask):
        return torch.cat([h[:, 0] for h in outputs.hidden_states[-self.n_layers :]], dim=-1)


class WeightedLayersHead(ScreeningHead):
    """[CLS] of a learned softmax-weighted sum of all layers (embeddings included)."""

    needs_hidden_states = True

    def __init__(self, config):
        super().__init__(config)
        self.layer_logits = nn.Parameter(torch.zeros(config.encoder_config.num_hidden_layers + 1))

    def pool(self, outputs, attention_mask):
        cls = torch.stack([h[:, 0] for h in outputs.hidden_states], dim=0)
        weights = torch.softmax(self.layer_logits, dim=0).to(cls.dtype)
        return torch.einsum("l,lbh->bh", weights, cls)


class AttentionHead(ScreeningHead):
    """Attention pooling: a learned score per token, softmax over real tokens, weighted sum."""

    def __init__(self, config):
        super().__init__(config)
        self.score = nn.Linear(self.hidden_size, 1)

    def pool(self, outputs, attention_mask):
        states = outputs.last_hidden_state
        scores = self.score(states).squeeze(-1).float()
        scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).to(states.dtype)
        return torch.einsum("bs,bsh->bh", weights, states)


class CnnHead(ScreeningHead):
    """The seed's head: Conv1d with the token axis as channels, ReLU, max-pool over the hidden axis."""

    def __init__(self, config):
        super().__init__(config)
        self.seq_length = config.cnn_seq_length
        self.conv = nn.Conv1d(
            config.cnn_seq_length, config.cnn_channels, config.cnn_kernel_size, padding=config.cnn_kernel_size // 2
        )
        self.pool_layer = nn.AdaptiveMaxPool1d(1)

    def feature_size(self, config):
        return config.cnn_channels

    def pool(self, outputs, attention_mask):
        states = outputs.last_hidden_state * attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
        states = nn.functional.pad(
            states[:, : self.seq_length], (0, 0, 0, self.seq_length - min(states.shape[1], self.seq_length))
        )
        return self.pool_layer(torch.relu(self.conv(states))).squeeze(-1)


class BiLstmHead(ScreeningHead):
    """A bidirectional LSTM over the last layer; mean of its outputs over real tokens."""

    def __init__(self, config):
        super().__init__(config)
        self.lstm = nn.LSTM(self.hidden_size, config.lstm_hidden_size, batch_first=True, bidirectional=True)

    def feature_size(self, config):
        return 2 * config.lstm_hidden_size

    def pool(self, outputs, attention_mask):
        states = outputs.last_hidden_state
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(states.float(), lengths, batch_first=True, enforce_sorted=False)
        with torch.autocast(device_type=states.device.type, enabled=False):
            out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=states.shape[1])
        return masked_mean(out, attention_mask).to(states.dtype)


HEADS = {
    "cls": ClsHead,
    "pooler": PoolerHead,
    "mean": MeanHead,
    "max": MaxHead,
    "cls_concat_last4": ClsConcatLast4Head,
    "weighted_layers": WeightedLayersHead,
    "attention": AttentionHead,
    "cnn": CnnHead,
    "bilstm": BiLstmHead,
}
