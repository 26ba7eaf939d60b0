"""The fast path: a `Trainer` whose prediction runs on length-sorted, token-budgeted batches.

Training speed comes from dynamic padding (`DataCollatorWithPadding`) and length-grouped batches
(`TrainingArguments(train_sampling_strategy="group_by_length")`); prediction speed from sorting the
records by length, filling each batch up to a token budget, running under `torch.inference_mode`
(with bf16 autocast where the hardware has bf16 matrix units) and putting the logits back in input
order. Only logits are kept, never hidden states. Wherever a batch runs in bf16/fp16, its padded length
is rounded up to a bucket (`BucketedPadding`) so that few input shapes reach the kernels.
"""

import contextlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding, Trainer

from .frozen_layers import LowerStatesCollator

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class FastPathArguments:
    """Speed settings; each piece of the fast path can be switched off to measure or debug it."""

    length_grouped_training: bool = field(
        default=True,
        metadata={
            "help": "Train on batches of records of similar length (less padding): sets "
            "--train_sampling_strategy group_by_length unless another non-random strategy is given. "
            "--no_length_grouped_training keeps random batches."
        },
    )
    length_sorted_prediction: bool = field(
        default=True,
        metadata={
            "help": "Evaluate and predict on length-sorted batches filled up to --prediction_token_budget "
            "(outputs come back in input order). Single process only: with several processes the Trainer's "
            "own order is used. --no_length_sorted_prediction turns it off."
        },
    )
    prediction_token_budget: int | None = field(
        default=None,
        metadata={
            "help": "Most padded tokens in one prediction batch (default: per_device_eval_batch_size x the "
            "longest input, the size of one fully padded batch)."
        },
    )
    prediction_precision: str = field(
        default="auto",
        metadata={
            "help": "Precision of the encoder when evaluating and predicting: 'auto' runs it under bf16 autocast where "
            "that is fast (a CUDA GPU with bf16, or a CPU with AMX or AVX512-BF16; elsewhere bf16 matmuls are "
            "emulated and far slower) and in fp32 elsewhere; 'fp32' or 'bf16' force one. The head and the logit "
            "are always float32. With --bf16, evaluation runs under the training autocast whatever this says.",
            "choices": PRECISIONS,
        },
    )
    padding_bucket: int = field(
        default=64,
        metadata={
            "help": "On the bf16/fp16 paths (--bf16 or --fp16 training, bf16 prediction) pad each batch to a "
            "multiple of this many tokens, at most the max length, so that the padded lengths stay few: bf16 CPU "
            "kernels keep state per input shape (263 distinct lengths grew RSS to 3.6 GiB, 7 kept it at 0.63 GiB). "
            "1 turns it off (each batch padded to its longest record)."
        },
    )
    cache_tokenization: bool = field(
        default=True,
        metadata={
            "help": "Reuse tokenized data from --tokenization_cache_dir when the texts, labels, tokenizer and "
            "max length are unchanged. --no_cache_tokenization always tokenizes afresh."
        },
    )
    tokenization_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where tokenized data is cached (default: the datasets cache, screening_tokenized/)."},
    )

    def apply(self, training_args):
        """Switch the Trainer's sampler to length grouping where asked for."""
        if self.length_grouped_training and training_args.train_sampling_strategy == "random":
            training_args.train_sampling_strategy = "group_by_length"


def fast_bf16_available(device):
    """True where bf16 matmuls run on hardware: CUDA with bf16 support, or a CPU with AMX / AVX512-BF16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def prediction_runs_bf16(precision, device):
    """Whether prediction autocasts the encoder to bf16: `precision` is 'auto' (where `fast_bf16_available`),
    'bf16' (always; emulated and slow on CPUs without bf16 units, but correct) or 'fp32' (never)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return fast_bf16_available(device) if precision == "auto" else precision == "bf16"


@dataclass
class BucketedPadding(DataCollatorWithPadding):
    """Dynamic padding to few lengths: each batch is padded to its longest record rounded up to
    `pad_to_multiple_of`, but never beyond `max_length` (when set) nor below the longest record."""

    def __call__(self, features):
        longest = max(len(f["input_ids"]) for f in features)
        target = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        if self.max_length is not None:
            target = max(min(target, self.max_length), longest)
        exact = replace(self, padding="max_length", max_length=target, pad_to_multiple_of=None)
        return DataCollatorWithPadding.__call__(exact, features)


def bucketed(collator, bucket, max_length=None):
    """`collator` with its padded lengths bucketed (see `BucketedPadding`); other collators are kept as they are."""
    if bucket <= 1 or not isinstance(collator, DataCollatorWithPadding) or collator.padding not in (True, "longest"):
        return collator
    return BucketedPadding(collator.tokenizer, pad_to_multiple_of=bucket, max_length=max_length)


class TokenBudgetBatchSampler(Sampler):
    """Batches of record indices, longest records first; a batch holds at most `max_tokens` padded tokens
    (its longest record's length, rounded up to `pad_to_multiple_of`, times its size). A record longer than
    the budget gets a batch of its own. `order` is the sequence in which records come out."""

    def __init__(self, lengths, max_tokens, pad_to_multiple_of=None):
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        multiple = pad_to_multiple_of or 1
        self.order = np.argsort(-lengths, kind="stable")
        self.batches = []
        start = 0
        while start < len(self.order):
            padded = -(-int(lengths[self.order[start]]) // multiple) * multiple  # the batch's longest, rounded up
            size = max(1, max_tokens // max(padded, 1))
            self.batches.append(self.order[start : start + size].tolist())
            start += size

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def restore_order(array, order):
    """Undo a permutation along the first axis: `array[i]` belongs to record `order[i]`."""
    if array is None:
        return None
    if isinstance(array, (tuple, list)):
        return type(array)(restore_order(a, order) for a in array)
    restored = np.empty_like(array)
    restored[order] = array
    return restored


class ScreeningTrainer(Trainer):
    """`Trainer` with the fast prediction path (see the module docstring).

    Args:
        length_sorted_prediction: sort prediction batches by length and fill them to `prediction_token_budget`.
        prediction_token_budget: most padded tokens per prediction batch.
        prediction_precision: 'auto', 'fp32' or 'bf16' for the encoder in prediction (see `prediction_runs_bf16`).
        padding_bucket: where a batch runs in bf16/fp16 (training with `--bf16`/`--fp16`, bf16 prediction), its
            padded length is rounded up to a multiple of this (a `DataCollatorWithPadding` becomes
            `BucketedPadding`); 1 keeps the collator as given.
        max_length: the longest tokenized input; bucketed padding never goes beyond it.
    """

    def __init__(
        self,
        *args,
        length_sorted_prediction=True,
        prediction_token_budget=None,
        prediction_precision="auto",
        padding_bucket=64,
        max_length=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.length_sorted_prediction = length_sorted_prediction
        self.prediction_token_budget = prediction_token_budget
        self.bf16_inference = prediction_runs_bf16(prediction_precision, self.args.device)
        given, buckets = self.data_collator, bucketed(self.data_collator, padding_bucket, max_length)
        if self.args.bf16 or self.args.fp16:
            self.data_collator = buckets
        self.prediction_collator = buckets if self.bf16_inference or self.args.bf16 or self.args.fp16 else given

    @contextlib.contextmanager
    def _predicting(self):
        """The prediction collator in place of the training one while a prediction dataloader is built."""
        training_collator, self.data_collator = self.data_collator, self.prediction_collator
        try:
            yield
        finally:
            self.data_collator = training_collator

    def _sorts_predictions(self, dataset):
        return (
            self.length_sorted_prediction
            and self.args.world_size <= 1
            and self.args.eval_do_concat_batches
            and hasattr(dataset, "column_names")
            and len(dataset) > 0
        )

    def _sorted_dataloader(self, dataset, description):
        lengths = dataset["length"] if "length" in dataset.column_names else [len(x) for x in dataset["input_ids"]]
        budget = self.prediction_token_budget
        if budget is None:
            budget = self.args.eval_batch_size * max(int(np.max(lengths)), 1)
        multiple = getattr(self.prediction_collator, "pad_to_multiple_of", None)
        sampler = TokenBudgetBatchSampler(lengths, budget, pad_to_multiple_of=multiple)
        dataset = self._remove_unused_columns(dataset, description=description)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.prediction_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        loader = self.accelerator.prepare(loader)
        loader.record_order = sampler.order  # evaluation_loop puts outputs back in input order with it
        return loader

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset[eval_dataset] if isinstance(eval_dataset, str) else eval_dataset
        dataset = dataset if dataset is not None else self.eval_dataset
        if self._sorts_predictions(dataset):
            return self._sorted_dataloader(dataset, "Evaluation")
        with self._predicting():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        if self._sorts_predictions(test_dataset):
            return self._sorted_dataloader(test_dataset, "test")
        with self._predicting():
            return super().get_test_dataloader(test_dataset)

    def _get_eval_sampler(self, eval_dataset):
        # The Trainer reuses group_by_length for evaluation, which shuffles predictions out of input order.
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset) if eval_dataset is not None else None
        return None

    def evaluation_loop(self, dataloader, *args, **kwargs):
        output = super().evaluation_loop(dataloader, *args, **kwargs)
        order = getattr(dataloader, "record_order", None)
        if order is None:
            return output
        return output._replace(
            predictions=restore_order(output.predictions, order), label_ids=restore_order(output.label_ids, order)
        )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        autocast = (
            torch.autocast(device_type=self.args.device.type, dtype=torch.bfloat16)
            if self.bf16_inference
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        if isinstance(logits, torch.Tensor) and logits.is_floating_point():
            logits = logits.float()
        return loss, logits, labels


def build_trainer(
    model,
    tokenizer,
    training_args,
    fast_args,
    train_dataset=None,
    eval_dataset=None,
    compute_metrics=None,
    max_length=None,
    lower_states=None,
):
    """The `ScreeningTrainer` of a fine-tune run: dynamic padding (`DataCollatorWithPadding`, bucketed on the
    bf16/fp16 paths) and the fast path as `fast_args` (a `FastPathArguments`) sets it; `training_args` gets
    length-grouped training where asked for. `max_length`: the longest tokenized input. `lower_states`: the
    store of cached frozen-layer outputs (screening.frozen_layers) the datasets' `lower_states` rows point into."""
    fast_args.apply(training_args)
    collator = DataCollatorWithPadding(tokenizer)
    if lower_states is not None:
        collator = LowerStatesCollator(collator, lower_states)
    return ScreeningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
        length_sorted_prediction=fast_args.length_sorted_prediction,
        prediction_token_budget=fast_args.prediction_token_budget,
        prediction_precision=fast_args.prediction_precision,
        padding_bucket=fast_args.padding_bucket,
        max_length=max_length,
    )
