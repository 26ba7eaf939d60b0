"""The fast path: token-budget batches, input order kept, tokenization cache, fast threshold search."""

import time

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import DataCollatorWithPadding, TrainingArguments

from screening.metrics import best_threshold
from screening.tokenization import tokenize_texts
from screening.trainer import FastPathArguments, ScreeningTrainer, TokenBudgetBatchSampler, fast_bf16_available

from .conftest import DEMO_TRAIN


@pytest.fixture(scope="module")
def texts():
    frame = pd.read_csv(DEMO_TRAIN, keep_default_na=False, dtype=str).head(40)
    # lengths from a few tokens to the max length, in no particular order
    words = (frame.title + " [SEP] " + frame.abstract).str.split()
    return [" ".join(w[: 2 + (i * 7) % 60]) for i, w in enumerate(words)]


def test_token_budget_batches_cover_every_record_once_within_budget():
    lengths = np.random.default_rng(0).integers(1, 100, size=500)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=640, pad_to_multiple_of=8)
    flat = [i for batch in sampler for i in batch]
    assert sorted(flat) == list(range(500)) and flat == sampler.order.tolist()
    assert np.all(np.diff(lengths[flat]) <= 0)  # longest first
    for batch in sampler:
        padded = -(-lengths[batch].max() // 8) * 8
        assert padded * len(batch) <= 640
    assert len(sampler) < 500 / 4  # short records share batches


def test_record_longer_than_budget_gets_its_own_batch():
    sampler = TokenBudgetBatchSampler([300, 10, 10], max_tokens=100)
    assert list(sampler) == [[0], [1, 2]]


def _trainer(model, tokenizer, tmp_path, **kwargs):
    args = TrainingArguments(
        str(tmp_path), per_device_eval_batch_size=8, use_cpu=True, report_to="none", **kwargs.pop("args", {})
    )
    return ScreeningTrainer(
        model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer, **kwargs
    )


@pytest.mark.parametrize("strategy", ["random", "group_by_length"])
def test_sorted_prediction_keeps_input_order(tester, texts, tmp_path, strategy):
    """Predictions on sorted, token-budgeted batches equal a plain forward pass per record, in input order."""
    model, tokenizer = tester.model("mean"), tester.tokenizer()
    labels = np.arange(len(texts)) % 2
    dataset = tokenize_texts(texts, labels, tokenizer, max_length=64)
    assert len(set(dataset["length"])) > 10
    args = {"train_sampling_strategy": strategy}
    # fp32 pinned: the comparison is with an fp32 forward pass (tests/test_precision.py covers bf16)
    trainer = _trainer(model, tokenizer, tmp_path, prediction_token_budget=200, prediction_precision="fp32", args=args)
    loader = trainer.get_test_dataloader(dataset)
    assert len(loader) > 3 and all(b["input_ids"].numel() <= 200 or len(b["input_ids"]) == 1 for b in loader)
    output = trainer.predict(dataset)
    with torch.no_grad():
        expected = [
            model(
                **{k: torch.tensor([dataset[i][k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
            ).logits.item()
            for i in range(len(texts))
        ]
    np.testing.assert_allclose(output.predictions.reshape(-1), expected, atol=1e-5)
    np.testing.assert_array_equal(output.label_ids, labels)
    assert output.predictions.dtype == np.float32


def test_distributed_prediction_falls_back_to_trainer_order(tester, texts, tmp_path, monkeypatch):
    args = {"train_sampling_strategy": "group_by_length"}
    trainer = _trainer(tester.model(), tester.tokenizer(), tmp_path, args=args)
    dataset = tokenize_texts(texts, None, tester.tokenizer(), max_length=64)
    assert trainer._sorts_predictions(dataset)
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    assert not trainer._sorts_predictions(dataset)
    assert trainer._get_eval_sampler(dataset) is None  # the Trainer's distributed sampler, never length-grouped


def test_length_grouping_is_the_default_training_sampler(tmp_path):
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none")
    FastPathArguments().apply(args)
    assert args.train_sampling_strategy == "group_by_length"
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", train_sampling_strategy="sequential")
    FastPathArguments().apply(args)
    assert args.train_sampling_strategy == "sequential"
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none")
    FastPathArguments(length_grouped_training=False).apply(args)
    assert args.train_sampling_strategy == "random"


def test_bf16_only_where_fast():
    assert isinstance(fast_bf16_available("cpu"), bool)
    assert fast_bf16_available("meta") is False


def test_tokenization_cache_hit(tester, texts, tmp_path):
    tokenizer = tester.tokenizer()
    calls = []

    class Counting(type(tokenizer)):
        def __call__(self, *args, **kwargs):
            calls.append(1)
            return super().__call__(*args, **kwargs)

    counting = Counting(vocab=tester.vocab, model_max_length=128)
    first = tokenize_texts(texts, [0, 1] * 20, counting, 64, cache_dir=tmp_path)
    n_calls = len(calls)
    assert n_calls > 0 and len(list(tmp_path.iterdir())) == 1
    second = tokenize_texts(texts, [0, 1] * 20, counting, 64, cache_dir=tmp_path)
    assert len(calls) == n_calls  # served from the cache
    assert second["input_ids"] == first["input_ids"] and second["labels"] == first["labels"]
    tokenize_texts(texts, [0, 1] * 20, counting, 32, cache_dir=tmp_path)  # another max length: a new entry
    tokenize_texts(texts[:-1] + ["changed"], [0, 1] * 20, counting, 64, cache_dir=tmp_path)  # another text
    assert len(calls) > n_calls and len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 3


def test_head_tail_truncation_is_cached_and_keyed(tester, texts, tmp_path):
    from screening.text import TextOptions

    long_texts = [text + " " + " ".join(["z"] * 80) for text in texts[:6]]
    head_tail = TextOptions(truncation="head_tail", head_tokens=8)
    first = tokenize_texts(long_texts, None, tester.tokenizer(), 32, cache_dir=tmp_path, options=head_tail)
    tail_id = tester.tokenizer().convert_tokens_to_ids("z")
    assert all(len(ids) == 32 and ids[-2] == tail_id for ids in first["input_ids"])  # the tail is kept
    again = tokenize_texts(long_texts, None, tester.tokenizer(), 32, cache_dir=tmp_path, options=head_tail)
    assert again["input_ids"] == first["input_ids"]
    head = tokenize_texts(long_texts, None, tester.tokenizer(), 32, cache_dir=tmp_path)
    assert head["input_ids"] != first["input_ids"]  # another truncation: another cache entry
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


def test_padded_tokenization_reports_real_lengths(tester, texts):
    dataset = tokenize_texts(texts[:5], None, tester.tokenizer(), 64, padding="max_length")
    assert all(len(ids) == 64 for ids in dataset["input_ids"])
    assert dataset["length"] == [sum(m) for m in dataset["attention_mask"]]


def test_threshold_search_on_a_million_probabilities_is_fast():
    rng = np.random.default_rng(0)
    labels = rng.random(1_000_000) < 0.03
    probs = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    start = time.perf_counter()
    best_threshold(labels, probs)
    assert time.perf_counter() - start < 3.0  # ~0.2 s on 2 cores; loose for shared CI machines
