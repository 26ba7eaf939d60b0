"""Tiny random models built locally: a small BertConfig and a WordPiece tokenizer from a vocab written here."""

import re
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transformers import BertConfig, BertModel, BertTokenizer  # noqa: E402

from modeling import ScreeningConfig, ScreeningForSequenceClassification  # noqa: E402

DEMO_TRAIN = REPO / "data" / "demo" / "train.csv"
DEMO_TEST = REPO / "data" / "demo" / "test.csv"


def demo_review(positives, negatives):
    """The demo's first `positives` includes and first `negatives` excludes, shuffled (seed 0), as strings."""
    train = pd.read_csv(DEMO_TRAIN, keep_default_na=False, dtype=str)
    train = pd.concat([train[train.judgement == "1"].head(positives), train[train.judgement == "0"].head(negatives)])
    return train.sample(frac=1, random_state=0).reset_index(drop=True)


def write_demo_train(path, positives, negatives, test_rows=0):
    """`path/train.csv`: `demo_review(positives, negatives)`; with `test_rows`, also `path/test.csv`: the demo test
    set's first `test_rows` records."""
    demo_review(positives, negatives).to_csv(path / "train.csv", index=False)
    if test_rows:
        test = pd.read_csv(DEMO_TEST, keep_default_na=False, dtype=str).head(test_rows)
        test.to_csv(path / "test.csv", index=False)


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_vocab(n_words=400):
    """Specials, the most common lower-cased words of the demo data, and single characters."""
    frame = pd.read_csv(DEMO_TRAIN, keep_default_na=False, dtype=str, nrows=400)
    words = Counter(re.findall(r"[a-z]+", " ".join(frame.title + " " + frame.abstract).lower()))
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,;:()-%")
    tokens = SPECIALS + [w for w, _ in words.most_common(n_words)] + chars + [f"##{c}" for c in chars]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def tiny_encoder_config(vocab_size, **kwargs):
    defaults = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertConfig(**{**defaults, **kwargs})


class ModelTester:
    """Builds tiny configs, models and inputs, as transformers' ModelTesters do."""

    def __init__(self, batch_size=4, seq_length=12):
        self.vocab = make_vocab()
        self.batch_size, self.seq_length = batch_size, seq_length

    def config(self, head_type="cls", **kwargs):
        kwargs.setdefault("cnn_seq_length", 16)
        kwargs.setdefault("cnn_channels", 8)
        kwargs.setdefault("lstm_hidden_size", 8)
        kwargs.setdefault("head_dropout", 0.0)
        return ScreeningConfig(
            encoder_config=tiny_encoder_config(len(self.vocab)).to_dict(), head_type=head_type, **kwargs
        )

    def model(self, head_type="cls", **kwargs):
        torch.manual_seed(0)
        return ScreeningForSequenceClassification(self.config(head_type, **kwargs)).eval()

    def inputs(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(5, len(self.vocab), (self.batch_size, self.seq_length), generator=g)
        mask = torch.ones_like(ids)
        mask[1, self.seq_length // 2 :] = 0  # one padded row
        ids[mask == 0] = 0
        labels = torch.tensor([1.0, 0.0, 0.0, 1.0][: self.batch_size])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def tokenizer(self):
        return BertTokenizer(vocab=self.vocab, model_max_length=128)


@pytest.fixture(scope="session")
def tester():
    return ModelTester()


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, tester):
    """A plain tiny BERT encoder checkpoint with its tokenizer, as a user would pass to --model_name_or_path."""
    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(tiny_encoder_config(len(tester.vocab))).save_pretrained(path)
    tester.tokenizer().save_pretrained(path)
    return path
