"""Precision paths, each forced so that both run on every CPU kind: bf16 encoder, float32 head and logit,
bucketed padded lengths on the bf16 paths."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import DataCollatorWithPadding, TrainingArguments

from modeling.heads import HEADS
from screening import trainer as fast_path
from screening.metrics import sigmoid
from screening.tokenization import tokenize_texts
from screening.trainer import BucketedPadding, ScreeningTrainer, prediction_runs_bf16

from .conftest import DEMO_TRAIN


@pytest.fixture(scope="module")
def dataset(tester):
    frame = pd.read_csv(DEMO_TRAIN, keep_default_na=False, dtype=str).head(60)
    words = (frame.title + " [SEP] " + frame.abstract).str.split()
    texts = [" ".join(w[: 2 + (i * 7) % 40]) for i, w in enumerate(words)]  # 8 to 100 tokens
    return tokenize_texts(texts, np.arange(len(texts)) % 2, tester.tokenizer(), max_length=100)


def _trainer(model, tokenizer, tmp_path, bf16_training=False, **kwargs):
    args = TrainingArguments(
        str(tmp_path),
        per_device_eval_batch_size=8,
        use_cpu=True,
        report_to="none",
        bf16=bf16_training,
        train_sampling_strategy="group_by_length",
    )
    collator = DataCollatorWithPadding(tokenizer)
    return ScreeningTrainer(model=model, args=args, data_collator=collator, processing_class=tokenizer, **kwargs)


@pytest.mark.parametrize("head_type", sorted(HEADS))
def test_head_and_logit_are_float32_under_bf16_autocast(tester, head_type):
    model = tester.model(head_type)
    inputs = tester.inputs()
    with torch.no_grad():
        reference = model(**inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = model(**inputs)
            assert model.encoder(inputs["input_ids"]).pooler_output.dtype == torch.bfloat16  # autocast is on
    assert output.logits.dtype == torch.float32 and output.loss.dtype == torch.float32
    torch.testing.assert_close(output.logits.sigmoid(), reference.logits.sigmoid(), atol=2e-3, rtol=0)


def test_training_step_under_bf16_autocast_keeps_a_float32_logit(tester):
    model = tester.model("mean").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(**tester.inputs())
    output.loss.backward()
    assert output.logits.dtype == torch.float32
    assert model.head.classifier.weight.grad.dtype == torch.float32


def test_head_stays_float32_when_the_model_is_loaded_in_bf16(tester, tmp_path):
    tester.model("mean").save_pretrained(tmp_path)
    model = type(tester.model()).from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert model.encoder.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    assert model.head.classifier.weight.dtype == torch.float32
    with torch.no_grad():
        assert model(**tester.inputs()).logits.dtype == torch.float32


def test_forced_bf16_prediction_keeps_scores_distinct_and_close(tester, dataset, tmp_path):
    model = tester.model("mean", threshold=0.5)
    torch.manual_seed(1)
    fp32_trainer = _trainer(model, tester.tokenizer(), tmp_path, prediction_precision="fp32")
    with torch.no_grad():  # spread the scores around 0.5, as a trained head would
        model.head.classifier.weight.normal_(0, 1.0)
        model.head.classifier.bias -= float(np.median(fp32_trainer.predict(dataset).predictions))
    fp32 = fp32_trainer.predict(dataset)
    bf16_trainer = _trainer(model, tester.tokenizer(), tmp_path, prediction_precision="bf16")
    assert bf16_trainer.bf16_inference
    bf16 = bf16_trainer.predict(dataset)
    assert bf16.predictions.dtype == np.float32
    p32, p16 = sigmoid(fp32.predictions), sigmoid(bf16.predictions)
    assert np.ptp(p32) > 0.05
    np.testing.assert_allclose(p16, p32, atol=2e-3, rtol=0)
    assert not np.array_equal(p16, p32)  # the encoder did run in bf16
    apart = np.abs(p32[:, None] - p32[None, :]) > 1e-4
    assert not np.any(apart & (p16[:, None] == p16[None, :]))  # no two distinct records share one probability


def test_precision_choice(monkeypatch):
    assert prediction_runs_bf16("bf16", "cpu") is True
    assert prediction_runs_bf16("fp32", "cpu") is False
    for hardware in (True, False):
        monkeypatch.setattr(fast_path, "fast_bf16_available", lambda device, value=hardware: value)
        assert prediction_runs_bf16("auto", "cpu") is hardware
    with pytest.raises(ValueError, match="precision must be one of"):
        prediction_runs_bf16("fp16", "cpu")


def test_bucketed_padding_rounds_up_within_the_max_length(tester):
    tokenizer = tester.tokenizer()
    collate = BucketedPadding(tokenizer, pad_to_multiple_of=64, max_length=100)
    rows = [{"input_ids": [2] + [7] * (n - 2) + [3], "attention_mask": [1] * n} for n in (5, 30)]
    assert collate(rows)["input_ids"].shape == (2, 64)
    assert collate(rows[:1] + [{"input_ids": [7] * 70, "attention_mask": [1] * 70}])["input_ids"].shape == (2, 100)
    assert collate([{"input_ids": [7] * 64, "attention_mask": [1] * 64}])["attention_mask"].sum() == 64


@pytest.mark.parametrize("precision,bf16_training", [("bf16", False), ("fp32", False), ("fp32", True)])
def test_padded_lengths_are_bucketed_on_the_bf16_paths_only(tester, dataset, tmp_path, precision, bf16_training):
    model = tester.model("mean")
    trainer = _trainer(
        model,
        tester.tokenizer(),
        tmp_path,
        bf16_training,
        prediction_precision=precision,
        padding_bucket=32,
        max_length=100,
    )
    trainer.train_dataset = dataset.remove_columns("length")
    bf16_prediction = precision == "bf16" or bf16_training
    widths = {b["input_ids"].shape[1] for b in trainer.get_test_dataloader(dataset)}
    train_widths = {b["input_ids"].shape[1] for b in trainer.get_train_dataloader()}
    lengths = set(dataset["length"])
    assert len(lengths) > 10
    if bf16_prediction:
        assert widths <= {32, 64, 96, 100}
    else:
        assert len(widths) > 4 and widths <= lengths  # each batch padded to its own longest record
    if bf16_training:
        assert train_widths <= {32, 64, 96, 100}
    else:
        assert train_widths <= lengths and train_widths - {32, 64, 96, 100}  # each batch at its own longest
