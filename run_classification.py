#!/usr/bin/env python
"""Fine-tune an encoder to screen papers for a systematic review (include/exclude from title + abstract).

One logit per record, BCE-family loss, and an F-beta (beta 7 by default) threshold searched on the
validation predictions and saved in the model's config. Follows transformers' `run_classification.py`:

    accelerate launch run_classification.py --model_name_or_path <encoder or saved model> \
        --train_file train.csv --test_file test.csv --do_train --do_eval --do_predict --output_dir out

All flags: `python run_classification.py --help`. A single .json or .yaml file of arguments works too.
"""

import logging
import sys
from dataclasses import dataclass, field

import datasets
import transformers
from transformers import TrainingArguments

import screening.cli
from modeling import HEADS
from modeling.configuration_screening import LOSS_TYPES
from screening.data import DatasetArguments
from screening.errors import exit_on_input_error
from screening.kfold import CrossValidationArguments
from screening.metrics import ThresholdArguments
from screening.pipelines import finetune
from screening.text import TextArguments, resolve_text_options
from screening.trainer import FastPathArguments

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which encoder or saved model to start from, and the head and loss to put on it."""

    model_name_or_path: str = field(
        metadata={
            "help": "An encoder checkpoint (folder or Hub id: BERT, PubMedBERT, RoBERTa, DeBERTa, ...) to build a "
            "screening model on, or a screening model saved by this script."
        }
    )
    head_type: str | None = field(
        default=None,
        metadata={
            "help": f"Head on the encoder, one of: {', '.join(HEADS)}. Default: 'cls' for a new model, "
            "the saved head for a screening model."
        },
    )
    head_dropout: float | None = field(
        default=None, metadata={"help": "Dropout before the head's last Linear (default 0.1)."}
    )
    loss_type: str | None = field(
        default=None, metadata={"help": f"Loss, one of: {', '.join(LOSS_TYPES)} (default bce)."}
    )
    pos_weight: str | None = field(
        default=None,
        metadata={
            "help": "Positive-class weight for the BCE losses: a number, or 'auto' for negatives/positives "
            "of the training data. Implies nothing about loss_type; weighted_bce requires it."
        },
    )
    focal_alpha: float | None = field(
        default=None, metadata={"help": "Focal loss alpha (positive weight, default 0.25)."}
    )
    focal_gamma: float | None = field(default=None, metadata={"help": "Focal loss gamma (default 2.0)."})
    label_smoothing: float | None = field(
        default=None, metadata={"help": "Label smoothing s: targets become y(1-s)+s/2 (default 0)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id, if not the model's own."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache models downloaded from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit of the model."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models (else the login's)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a Hub model's own code to run (needed for some encoders)."}
    )
    attn_implementation: str | None = field(
        default="sdpa", metadata={"help": "Attention kernel: sdpa (default), eager, flash_attention_2, ..."}
    )
    attention_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Replace the encoder's dropout on attention probabilities (BERT's attention_probs_dropout_prob, "
            "0.1 in most checkpoints) for fine-tuning. 0 lets SDPA use its fused kernel in training too: on a CPU "
            "training was 1.8x faster (benchmarks/speed.md). Default: keep the checkpoint's value."
        },
    )

    freeze_layers: int | None = field(
        default=None,
        metadata={
            "help": "Freeze the embeddings and the lowest N encoder layers (BERT-family encoders): their output is "
            "computed once per record and cached beside the tokenization (a new model, max length or text options "
            "makes new entries), and every epoch runs only the layers above them and the head: a fine-tune of every "
            "record at 256+ tokens that fits a CPU. The saved model predicts with the whole encoder, like any "
            "other. Default: train every layer."
        },
    )

    def config_overrides(self):
        """ScreeningConfig fields given on the command line (pos_weight is resolved later)."""
        names = ("head_type", "head_dropout", "loss_type", "focal_alpha", "focal_gamma", "label_smoothing")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass
class DataTrainingArguments(DatasetArguments):
    """What data to train, evaluate and predict on (files, or the splits of --dataset_name), and how to turn
    records into model inputs."""

    train_file: str | None = field(default=None, metadata={"help": "Labelled training data (.csv or .jsonl)."})
    validation_file: str | None = field(
        default=None,
        metadata={
            "help": "Labelled validation data (.csv or .jsonl); the threshold is tuned on it. Without it, "
            "--validation_split_percentage of the training data is held out."
        },
    )
    test_file: str | None = field(
        default=None, metadata={"help": "Data to predict (.csv or .jsonl, no label needed), for --do_predict."}
    )
    text_columns: str = field(
        default="title,abstract", metadata={"help": "Comma-separated text columns, joined by --text_separator."}
    )
    label_column: str = field(default="judgement", metadata={"help": "Column of 0/1 labels (1 = include)."})
    id_column: str = field(default="id", metadata={"help": "Column of unique record ids."})
    text_separator: str | None = field(
        default=None, metadata={"help": "Put between text columns (default: the tokenizer's sep token, e.g. [SEP])."}
    )
    max_seq_length: int = field(
        default=512, metadata={"help": "Longest input in tokens, after truncation; capped at the model's limit."}
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every input to max_seq_length (slow). Default: pad each batch to its longest input."},
    )
    validation_split_percentage: float = field(
        default=20,
        metadata={
            "help": "Percent of the training data held out (stratified by label) when there is no "
            "--validation_file; 0 disables."
        },
    )
    beta: float = field(default=7.0, metadata={"help": "Beta of the F-beta score the threshold is tuned for."})
    negative_sampling_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Train on every positive and this many randomly chosen negatives per positive (seeded by "
            "--seed; each fold samples its own training part). Cuts training time about 1/(prevalence x (1 + "
            "ratio)) times; validation, OOF and test data are never sampled. --pos_weight auto follows the "
            "sampled ratio. Default: all negatives."
        },
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training records."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation records."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test records."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Allow writing over results already in --output_dir (else the run stops; checkpoints "
            "found there are resumed from)."
        },
    )

    @property
    def text_column_list(self):
        return [c.strip() for c in self.text_columns.split(",") if c.strip()]


def parse_args(argv=None):
    """Flags, or a single .json/.yaml file of arguments. Any mistake is a ScreeningInputError."""
    dataclass_types = (
        ModelArguments,
        DataTrainingArguments,
        TrainingArguments,
        FastPathArguments,
        CrossValidationArguments,
        TextArguments,
        ThresholdArguments,
    )
    return screening.cli.parse_args(dataclass_types, argv)


def setup_logging(training_args):
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def main():
    model_args, data_args, training_args, fast_args, cv_args, text_args, threshold_args = parse_args()
    setup_logging(training_args)
    logger.warning(
        f"Process rank: {training_args.local_process_index}, device: {training_args.device}, "
        f"n_gpu: {training_args.n_gpu}, distributed: {training_args.parallel_mode.value == 'distributed'}"
    )
    logger.info(f"Training/evaluation parameters {training_args}")
    finetune.check_args(model_args, data_args, training_args, fast_args, cv_args, threshold_args)
    setup = finetune.Finetune(
        model_args,
        data_args,
        training_args,
        fast_args,
        cv_args,
        text_options=resolve_text_options(text_args, model_args.model_name_or_path),
        rule=finetune.threshold_rule(threshold_args, model_args.model_name_or_path),
    )
    # Trainer would push every checkpoint with its own card; this script pushes once, at the end (hub.hub_files)
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    summary, report = finetune.cross_validate(setup) if cv_args.num_folds else finetune.run(setup)
    if training_args.process_index == 0:
        if push_to_hub:
            finetune.push(training_args.output_dir, training_args)
        screening.cli.print_summary(summary, report, training_args.output_dir)


def cli():
    exit_on_input_error(main)


if __name__ == "__main__":
    cli()
