#!/usr/bin/env python
"""Fine-tune an encoder to screen papers for a systematic review (include/exclude from title + abstract).

One logit per record, BCE-family loss, and an F-beta (beta 7 by default) threshold searched on the
validation predictions and saved in the model's config. Follows transformers' `run_classification.py`:

    accelerate launch run_classification.py --model_name_or_path <encoder or saved model> \
        --train_file train.csv --test_file test.csv --do_train --do_eval --do_predict --output_dir out

All flags: `python run_classification.py --help`. A single .json or .yaml file of arguments works too.
"""

import copy
import json
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import transformers
from sklearn.model_selection import train_test_split
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    set_seed,
)

from modeling import HEADS, ScreeningForSequenceClassification
from modeling.configuration_screening import LOSS_TYPES
from screening import cli as cli_module
from screening import hub, io
from screening.data import ScreeningInputError, check_folds, check_two_classes, load_split, sample_negatives
from screening.kfold import CrossValidationArguments, FoldOutput, load_kfold_data, run_kfold
from screening.launch import check_precision
from screening.metrics import (
    ThresholdArguments,
    apply_threshold,
    expected_missed,
    recall_sentence,
    screening_metrics,
    sigmoid,
    uncertified_message,
)
from screening.report import write_report
from screening.runs import last_complete_checkpoint, resolve_output_dir, save_metrics, save_trainer_state
from screening.text import (
    TextArguments,
    TextOptions,
    add_separator_token,
    prepare_texts,
    resolve_text_options,
    save_text_options,
)
from screening.tokenization import default_cache_dir, tokenize_texts
from screening.trainer import FastPathArguments, ScreeningTrainer

logger = logging.getLogger(__name__)

# Files that mark --output_dir as holding an earlier run's results: kept unless --overwrite_output_dir.
RESULT_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "predict_results.json",
    "predictions.csv",
    "submission.csv",
    "eval_predictions.csv",
    "oof.csv",
    "model.safetensors",
)


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

    def config_overrides(self):
        """ScreeningConfig fields given on the command line (pos_weight is resolved later)."""
        names = ("head_type", "head_dropout", "loss_type", "focal_alpha", "focal_gamma", "label_smoothing")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass
class DataTrainingArguments:
    """What data to train, evaluate and predict on, and how to turn records into model inputs."""

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
    return cli_module.parse_args(dataclass_types, argv)


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


def check_args(model_args, data_args, training_args, fast_args, threshold_args=None):
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ScreeningInputError("nothing to do: give at least one of --do_train, --do_eval, --do_predict")
    if training_args.do_train and not data_args.train_file:
        raise ScreeningInputError("--do_train needs --train_file")
    if training_args.do_eval and not (data_args.validation_file or data_args.train_file):
        raise ScreeningInputError("--do_eval needs --validation_file (or --train_file to split one off)")
    if training_args.do_predict and not data_args.test_file:
        raise ScreeningInputError("--do_predict needs --test_file")
    if model_args.head_type is not None and model_args.head_type not in HEADS:
        raise ScreeningInputError(f"--head_type must be one of {', '.join(HEADS)}; got {model_args.head_type!r}")
    if model_args.loss_type is not None and model_args.loss_type not in LOSS_TYPES:
        raise ScreeningInputError(f"--loss_type must be one of {', '.join(LOSS_TYPES)}; got {model_args.loss_type!r}")
    if not 0 <= data_args.validation_split_percentage < 100:
        raise ScreeningInputError("--validation_split_percentage must be in [0, 100)")
    if not data_args.text_column_list:
        raise ScreeningInputError("--text_columns names no column")
    if model_args.attention_dropout is not None and not 0 <= model_args.attention_dropout < 1:
        raise ScreeningInputError(f"--attention_dropout must be in [0, 1); got {model_args.attention_dropout}")
    if data_args.negative_sampling_ratio is not None and data_args.negative_sampling_ratio <= 0:
        raise ScreeningInputError(
            f"--negative_sampling_ratio must be > 0 (negatives per positive); got {data_args.negative_sampling_ratio}"
        )
    check_precision(training_args)
    if fast_args.padding_bucket < 1:
        raise ScreeningInputError(f"--padding_bucket must be at least 1; got {fast_args.padding_bucket}")
    if threshold_args is not None:
        threshold_args.check()


def threshold_rule(threshold_args, model_args):
    """The threshold rule of this run: the flags given, else those saved with a screening model in
    --model_name_or_path (a local folder), else best F-beta."""
    saved = None
    config_file = Path(model_args.model_name_or_path) / "config.json"
    if config_file.is_file():
        try:
            saved = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError:
            saved = None  # load_model reports an unreadable folder
        if not isinstance(saved, dict) or saved.get("model_type") != "screening":
            saved = None
    return threshold_args.resolved(saved)


def load_data(data_args, training_args):
    """Train / validation / test DataFrames (None where not needed)."""
    cols, id_col, label_col = data_args.text_column_list, data_args.id_column, data_args.label_column
    train = validation = test = None
    if data_args.train_file and (training_args.do_train or not data_args.validation_file):
        train = load_split(data_args.train_file, cols, id_col, label_col, "--train_file")
    if data_args.validation_file and (training_args.do_train or training_args.do_eval):
        validation = load_split(data_args.validation_file, cols, id_col, label_col, "--validation_file")
    elif train is not None and data_args.validation_split_percentage > 0:
        fraction = data_args.validation_split_percentage / 100
        stratify = train["labels"] if train["labels"].value_counts().min() >= 2 else None
        train, validation = train_test_split(
            train, test_size=fraction, stratify=stratify, random_state=training_args.seed
        )
        train, validation = train.reset_index(drop=True), validation.reset_index(drop=True)
        logger.info(f"Held out {len(validation)} of the training records for validation (stratified)")
    if training_args.do_eval and validation is None:
        raise ScreeningInputError("--do_eval: no validation data (give --validation_file or a split percentage > 0)")
    if training_args.do_predict:
        test = load_split(data_args.test_file, cols, id_col, None, "--test_file")
    limits = (data_args.max_train_samples, data_args.max_eval_samples, data_args.max_predict_samples)
    train, validation, test = (
        f.iloc[:n].reset_index(drop=True) if f is not None and n is not None else f
        for f, n in zip((train, validation, test), limits)
    )
    if training_args.do_train:
        check_two_classes(train["labels"], data_args.train_file, "--train_file")
    if training_args.do_eval:  # the threshold is tuned on it
        if data_args.validation_file:
            check_two_classes(validation["labels"], data_args.validation_file, "--validation_file", "validation data")
        else:
            fix = "give --validation_file or a larger --validation_split_percentage"
            check_two_classes(validation["labels"], data_args.train_file, "--train_file", "validation split", fix)
    return train, validation, test


def resolve_max_length(requested, tokenizer, model):
    limits = [requested]
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)
    if getattr(model.config.encoder_config, "max_position_embeddings", None):
        limits.append(model.config.encoder_config.max_position_embeddings)
    length = min(limits)
    if length < requested:
        logger.warning(f"--max_seq_length {requested} is more than the model's limit; using {length}")
    return length


def tokenize(frame, tokenizer, data_args, max_length, training_args, desc, cache_dir=None, text_options=None):
    """A tokenized `datasets.Dataset` (input ids, attention mask, length[, labels]); texts built, cleaned and
    truncated the same way for every split; loaded from `cache_dir` when tokenized there before."""
    text_options = text_options or TextOptions()
    separator = data_args.text_separator or tokenizer.sep_token or "|"
    texts = prepare_texts(frame, data_args.text_column_list, separator, text_options)
    labels = frame["labels"].astype(np.float32).to_numpy() if "labels" in frame else None
    padding = "max_length" if data_args.pad_to_max_length else False
    with training_args.main_process_first(desc=desc):
        return tokenize_texts(
            texts,
            labels,
            tokenizer,
            max_length,
            padding,
            cache_dir,
            data_args.preprocessing_num_workers,
            desc,
            text_options,
        )


def resolve_pos_weight(value, train):
    if value is None:
        return None
    if value == "auto":
        positives = int(train["labels"].sum())
        return float((len(train) - positives) / max(positives, 1))
    try:
        return float(value)
    except ValueError:
        raise ScreeningInputError(f"--pos_weight must be a number or 'auto'; got {value!r}") from None


def load_model(model_args, data_args, train):
    overrides = model_args.config_overrides()
    pos_weight = resolve_pos_weight(model_args.pos_weight, train) if train is not None else None
    if pos_weight is not None:
        overrides["pos_weight"] = pos_weight
    overrides.setdefault("cnn_seq_length", data_args.max_seq_length)
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    flag = "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path"
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model_args.tokenizer_name or model_args.model_name_or_path,
            trust_remote_code=model_args.trust_remote_code,
            **hub,
        )
        flag = "--model_name_or_path"
        model = ScreeningForSequenceClassification.from_pretrained(
            model_args.model_name_or_path,
            attn_implementation=model_args.attn_implementation,
            attention_dropout=model_args.attention_dropout,
            trust_remote_code=model_args.trust_remote_code,
            **hub,
            **overrides,
        )
    except ValueError as err:
        if model_args.attention_dropout is None or "attention dropout" not in str(err):
            raise
        raise ScreeningInputError(f"--attention_dropout: {err}") from None
    except OSError as err:  # not a folder nor a reachable Hub id, or no weights/tokenizer in it
        name = model_args.tokenizer_name if flag == "--tokenizer_name" else model_args.model_name_or_path
        what = "cannot load from the folder" if Path(name).is_dir() else "is neither a local folder nor a Hub model"
        raise ScreeningInputError(f"{flag} {name} {what}: {' '.join(str(err).split())}") from None
    return tokenizer, model


def make_compute_metrics(beta, rule=None):
    def compute_metrics(eval_pred):
        return screening_metrics(eval_pred.label_ids, sigmoid(eval_pred.predictions), beta, rule)

    return compute_metrics


VALIDATION_KEYS = ("recall", "recall_ci_low", "recall_ci_high", "read_share", "wss", "includes", "includes_found")


def save_threshold_rule(config, rule, metrics, validation_records):
    """The rule the threshold was chosen by, and the held-out figures at it, saved in the model's config."""
    config.threshold = float(metrics["eval_threshold"])
    config.threshold_objective = rule.threshold_objective
    config.target_recall = rule.target_recall
    config.recall_confidence = rule.recall_confidence
    config.threshold_validation = {
        "records": int(validation_records),
        **{k: metrics.get(f"eval_{k}") for k in VALIDATION_KEYS},
        "recall_target_certified": metrics.get("eval_recall_target_certified"),
    }


def predict_figures(config, predicted):
    """predict_results.json: the threshold, its rule, the predicted includes and the expected missed includes
    (screening.metrics.expected_missed) from the held-out figures saved with the model, when it has them."""
    figures = {
        "predict_samples": len(predicted),
        "predict_includes": int(predicted.sum()),
        "predict_threshold": float(config.threshold),
        "threshold_objective": config.threshold_objective,
        "target_recall": config.target_recall,
        "recall_confidence": config.recall_confidence,
    }
    held_out = config.threshold_validation or {}
    prevalence = held_out["includes"] / held_out["records"] if held_out.get("records") else None
    interval = (held_out.get("recall"), held_out.get("recall_ci_low"), held_out.get("recall_ci_high"))
    missed = expected_missed(prevalence, len(predicted), *interval)
    figures.update({f"predict_{k}": v for k, v in missed.items()})
    return figures


def write_predictions(path, ids, probabilities, labels=None, predicted=None):
    frame = pd.DataFrame({"id": ids, "probability": probabilities})
    if labels is not None:
        frame["label"] = labels
    if predicted is not None:
        frame["prediction"] = predicted
    io.write_csv(path, frame)


def train_eval_predict(
    model_args,
    data_args,
    training_args,
    fast_args,
    text_options,
    train,
    validation,
    test,
    checkpoint=None,
    rule=None,
):
    """One run on given DataFrames (train/validation/test, None where not needed) into training_args.output_dir:
    train, choose the threshold on validation by `rule` (a resolved ThresholdArguments; default best F-beta),
    predict test. Each fold of a K-fold run is one call of this. Returns the summary figures, the report figures
    and the validation and test probabilities."""
    rule = (rule or ThresholdArguments()).resolved()
    if training_args.do_train and data_args.negative_sampling_ratio is not None:
        total = len(train)
        train = sample_negatives(train, data_args.negative_sampling_ratio, training_args.seed)
        positives = int(train["labels"].sum())
        logger.info(
            f"Negative sampling: training on {positives} positives and {len(train) - positives} of "
            f"{total - positives} negatives (ratio {data_args.negative_sampling_ratio:g})"
        )
    tokenizer, model = load_model(model_args, data_args, train)
    add_separator_token(tokenizer, model, text_options)
    max_length = resolve_max_length(data_args.max_seq_length, tokenizer, model)
    cache_dir = (fast_args.tokenization_cache_dir or default_cache_dir()) if fast_args.cache_tokenization else None

    def tokenized(frame, desc):
        return tokenize(frame, tokenizer, data_args, max_length, training_args, desc, cache_dir, text_options)

    train_ds = tokenized(train, "Tokenizing train") if training_args.do_train else None
    eval_ds = (
        tokenized(validation, "Tokenizing validation")
        if validation is not None and (training_args.do_train or training_args.do_eval)
        else None
    )
    test_ds = tokenized(test, "Tokenizing test") if test is not None else None
    model.config.beta = data_args.beta

    trainer = ScreeningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(data_args.beta, rule),
        length_sorted_prediction=fast_args.length_sorted_prediction,
        prediction_token_budget=fast_args.prediction_token_budget,
        prediction_precision=fast_args.prediction_precision,
        padding_bucket=fast_args.padding_bucket,
        max_length=max_length,
    )
    out = Path(training_args.output_dir)
    main_process = trainer.is_world_process_zero()
    summary, all_metrics, eval_metrics, predict_metrics = {}, {}, {}, {}
    eval_probabilities = test_probabilities = None

    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = dict(result.metrics, train_samples=len(train_ds))
        trainer.save_model()
        trainer.log_metrics("train", metrics)
        if main_process:
            save_metrics(out, "train", metrics, all_metrics)
            save_trainer_state(trainer, out)
    if main_process and (training_args.do_train or training_args.do_eval):
        save_text_options(out, text_options)  # a loaded model rebuilds its inputs the same way

    if training_args.do_eval:
        logger.info("*** Evaluate and tune the threshold ***")
        output = trainer.predict(eval_ds, metric_key_prefix="eval")
        metrics = eval_metrics = dict(output.metrics, eval_samples=len(eval_ds), **rule.as_dict())
        save_threshold_rule(model.config, rule, metrics, len(eval_ds))
        if metrics.get("eval_recall_target_certified") is False:
            logger.warning(uncertified_message(int(validation["labels"].sum()), rule, "validation"))
        trainer.log_metrics("eval", {k: v for k, v in metrics.items() if v is not None})  # None: not formattable
        trainer.save_model()  # the tuned threshold is part of the saved model
        eval_probabilities = sigmoid(output.predictions)
        if main_process:
            save_metrics(out, "eval", metrics, all_metrics)
            predicted = apply_threshold(eval_probabilities, model.config.threshold)
            write_predictions(
                out / "eval_predictions.csv", validation["id"], eval_probabilities, validation["labels"], predicted
            )
        keys = ("fbeta", "threshold", "wss_95", "roc_auc", "recall", "recall_ci_low", "recall_ci_high", "read_share")
        summary.update({k: metrics.get(f"eval_{k}") for k in keys + ("wss", "precision")})

    if training_args.do_predict:
        logger.info(f"*** Predict at threshold {model.config.threshold:.6g} ***")
        output = trainer.predict(test_ds, metric_key_prefix="predict")
        test_probabilities = sigmoid(output.predictions)
        if main_process:
            labels = apply_threshold(test_probabilities, model.config.threshold)
            write_predictions(out / "predictions.csv", test["id"], test_probabilities, predicted=labels)
            io.write_csv(out / "submission.csv", pd.DataFrame({"id": test["id"], "judgement": labels}), header=False)
            predict_metrics = predict_figures(model.config, labels)
            save_metrics(out, "predict", predict_metrics, all_metrics)
            summary.update(predicted_includes=int(labels.sum()), predicted_records=len(labels))
            if predict_metrics["predict_expected_missed"] is not None:
                summary.update(expected_missed=predict_metrics["predict_expected_missed"])
    report = {**eval_metrics, **predict_metrics}
    if main_process and eval_probabilities is not None:
        write_report(out, validation["labels"], eval_probabilities, report, f"{out.name}: validation")

    if main_process and (training_args.do_train or training_args.do_eval):
        settings = hub.training_settings(model_args, data_args, training_args, model)
        dataset = hub.dataset_description(data_args, train, validation) if validation is not None else None
        card = hub.model_card(
            training_args.hub_model_id or out.name,
            eval_metrics,
            settings,
            dataset,
            train_records=len(train_ds) if train_ds is not None else None,
        )
        hub.write_model_card(out, card)
    return {
        "summary": summary,
        "report": report,
        "eval_probabilities": eval_probabilities,
        "test_probabilities": test_probabilities,
    }


def cross_validate(model_args, data_args, training_args, fast_args, cv_args, text_options, rule=None):
    """K-fold: the single-run setup above, once per fold, into output_dir/fold_<k>; then OOF and fold-averaged
    test predictions (screening.kfold). Finished folds are skipped on a rerun."""
    cv_args.check()
    if not training_args.do_train:
        raise ScreeningInputError("--num_folds needs --do_train (each fold trains its own model)")
    if data_args.validation_file:
        raise ScreeningInputError("--num_folds uses each fold in turn for validation; drop --validation_file")
    train, test, groups = load_kfold_data(
        data_args.train_file,
        data_args.test_file if training_args.do_predict else None,
        data_args.text_column_list,
        data_args.id_column,
        data_args.label_column,
        cv_args.group_column,
    )
    if data_args.max_train_samples is not None:
        train = train.iloc[: data_args.max_train_samples].reset_index(drop=True)
        groups = groups if groups is None else groups[: len(train)]
    if test is not None and data_args.max_predict_samples is not None:
        test = test.iloc[: data_args.max_predict_samples].reset_index(drop=True)
    check_two_classes(train["labels"], data_args.train_file, "--train_file")
    check_folds(train["labels"], cv_args.num_folds, data_args.train_file)

    def fit_fold(fold_train, valid, fold_test, fold_dir):
        fold_args = copy.deepcopy(training_args)
        fold_args.output_dir, fold_args.do_eval = str(fold_dir), True
        if fold_args.run_name in (None, training_args.output_dir):
            fold_args.run_name = str(fold_dir)
        checkpoint = None  # an unfinished fold resumes from its last complete checkpoint, else starts over
        if fold_dir.is_dir() and not data_args.overwrite_output_dir:
            checkpoint = last_complete_checkpoint(fold_dir)
        set_seed(training_args.seed)
        result = train_eval_predict(
            model_args, data_args, fold_args, fast_args, text_options, fold_train, valid, fold_test, checkpoint, rule
        )
        if training_args.process_index == 0:  # the fold's best model is saved in fold_dir itself
            for path in fold_dir.glob("checkpoint-*"):
                shutil.rmtree(path, ignore_errors=True)
        return FoldOutput(result["eval_probabilities"], result["test_probabilities"])

    results = run_kfold(
        train,
        test,
        fit_fold,
        training_args.output_dir,
        cv_args,
        beta=data_args.beta,
        groups=groups,
        overwrite=data_args.overwrite_output_dir,
        main_process=training_args.process_index == 0,
        command=" ".join(sys.argv),
        rule=rule,
    )
    keys = ("honest_oof_fbeta", "oof_fbeta", "oof_threshold", "mean_fold_threshold", "oof_roc_auc", "mean_fold_roc_auc")
    keys += ("honest_oof_recall", "honest_oof_recall_ci_low", "honest_oof_recall_ci_high", "honest_oof_read_share")
    summary = {k: results[k] for k in keys if k in results} | {"skipped_folds": results["skipped_folds"]}
    return summary, results


def main():
    model_args, data_args, training_args, fast_args, cv_args, text_args, threshold_args = parse_args()
    fast_args.apply(training_args)
    setup_logging(training_args)
    logger.warning(
        f"Process rank: {training_args.local_process_index}, device: {training_args.device}, "
        f"n_gpu: {training_args.n_gpu}, distributed: {training_args.parallel_mode.value == 'distributed'}"
    )
    logger.info(f"Training/evaluation parameters {training_args}")
    check_args(model_args, data_args, training_args, fast_args, threshold_args)
    rule = threshold_rule(threshold_args, model_args)
    text_options = resolve_text_options(text_args, model_args.model_name_or_path)
    # Trainer would push every checkpoint with its own card; this script pushes once, at the end, hub.hub_files
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    out = Path(training_args.output_dir)
    if cv_args.num_folds:
        summary, report = cross_validate(model_args, data_args, training_args, fast_args, cv_args, text_options, rule)
    else:
        # Every check of the user's input runs before Trainer(...) creates output_dir.
        checkpoint = resolve_output_dir(
            training_args.output_dir,
            RESULT_FILES,
            training_args.do_train,
            data_args.overwrite_output_dir,
            training_args.resume_from_checkpoint,
        )
        set_seed(training_args.seed)
        train, validation, test = load_data(data_args, training_args)
        result = train_eval_predict(
            model_args, data_args, training_args, fast_args, text_options, train, validation, test, checkpoint, rule
        )
        summary, report = result["summary"], result["report"]

    if training_args.process_index == 0:
        if push_to_hub:
            repo_id = training_args.hub_model_id or out.resolve().name
            commit = hub.push_to_hub(
                out,
                repo_id,
                token=training_args.hub_token,
                private=training_args.hub_private_repo,
                revision=training_args.hub_revision,
            )
            logger.info(f"Pushed {', '.join(hub.hub_files(out))} to {commit.commit_url}")
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
        sentence = recall_sentence(report)
        print(
            f"\nDone. {figures}\n"
            + (sentence + "\n" if sentence else "")
            + f"Outputs in {out.resolve()}: "
            + ", ".join(sorted(p.name for p in out.iterdir() if p.is_file()))
        )


def cli():
    cli_module.run(main)


if __name__ == "__main__":
    cli()
