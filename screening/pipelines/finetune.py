"""The fine-tune pipeline: an encoder with a screening head (modeling/) trained by the Trainer, its threshold chosen
on the validation predictions and saved in the model's config. `run` is one run into --output_dir;
`cross_validate` runs `fit_fold` on every fold of the one K-fold driver (screening.kfold.run_kfold).

Its arguments are the dataclasses of run_classification.py, gathered with the resolved text options and
threshold rule in a `Finetune`.
"""

import copy
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sklearn.model_selection import train_test_split
from transformers import AutoTokenizer, set_seed

from modeling import HEADS, ScreeningForSequenceClassification
from modeling.configuration_screening import LOSS_TYPES

from .. import hub, outputs
from ..data import check_two_classes, first_rows, load_kfold_data, load_split, sample_negatives
from ..errors import ScreeningInputError
from ..frozen_layers import attach_lower_states
from ..kfold import FoldOutput, run_kfold, summary_figures
from ..metrics import (
    ThresholdArguments,
    apply_threshold,
    expected_missed,
    screening_metrics,
    sigmoid,
    uncertified_message,
)
from ..report import write_report
from ..text import TextOptions, save_text_options
from ..tokenization import add_separator_token, default_cache_dir, tokenize_frame
from ..trainer import build_trainer

logger = logging.getLogger(__name__)

FROZEN_INCOMPATIBLE_HEADS = ("cls_concat_last4", "weighted_layers")  # they read the frozen layers' outputs too
SUMMARY_KEYS = ("fbeta", "threshold", "wss_95", "roc_auc", "recall", "recall_ci_low", "recall_ci_high")
SUMMARY_KEYS += ("read_share", "wss", "precision")
VALIDATION_KEYS = ("recall", "recall_ci_low", "recall_ci_high", "read_share", "wss", "includes", "includes_found")


@dataclass
class Finetune:
    """What a fine-tune run reads: run_classification.py's argument dataclasses, the text options and the
    threshold rule (a resolved ThresholdArguments) that follow from them."""

    model_args: object
    data_args: object
    training_args: object
    fast_args: object
    cv_args: object
    text_options: TextOptions
    rule: ThresholdArguments


def check_args(model_args, data_args, training_args, fast_args, cv_args, threshold_args):
    """Every check of the flags, before anything is loaded or written."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ScreeningInputError("nothing to do: give at least one of --do_train, --do_eval, --do_predict")
    if training_args.do_train and not (data_args.train_file or data_args.dataset_name):
        raise ScreeningInputError("--do_train needs --train_file or --dataset_name")
    if training_args.do_eval and not (data_args.validation_file or data_args.train_file or data_args.dataset_name):
        raise ScreeningInputError(
            "--do_eval needs --validation_file (or --train_file to split one off) or --dataset_name"
        )
    if training_args.do_predict and not (data_args.test_file or data_args.dataset_name):
        raise ScreeningInputError("--do_predict needs --test_file or --dataset_name")
    if model_args.head_type is not None and model_args.head_type not in HEADS:
        raise ScreeningInputError(f"--head_type must be one of {', '.join(HEADS)}; got {model_args.head_type!r}")
    if model_args.loss_type is not None and model_args.loss_type not in LOSS_TYPES:
        raise ScreeningInputError(f"--loss_type must be one of {', '.join(LOSS_TYPES)}; got {model_args.loss_type!r}")
    if not 0 <= data_args.validation_split_percentage < 100:
        raise ScreeningInputError("--validation_split_percentage must be in [0, 100)")
    if not data_args.text_column_list:
        raise ScreeningInputError("--text_columns names no column")
    if model_args.freeze_layers is not None and model_args.freeze_layers < 1:
        raise ScreeningInputError(f"--freeze_layers must be at least 1; got {model_args.freeze_layers}")
    if model_args.freeze_layers and model_args.head_type in FROZEN_INCOMPATIBLE_HEADS:
        raise ScreeningInputError(f"--freeze_layers needs a head that reads the last layer; not {model_args.head_type}")
    if model_args.attention_dropout is not None and not 0 <= model_args.attention_dropout < 1:
        raise ScreeningInputError(f"--attention_dropout must be in [0, 1); got {model_args.attention_dropout}")
    if data_args.negative_sampling_ratio is not None and data_args.negative_sampling_ratio <= 0:
        raise ScreeningInputError(
            f"--negative_sampling_ratio must be > 0 (negatives per positive); got {data_args.negative_sampling_ratio}"
        )
    if training_args.fp16 and training_args.device.type == "cpu":  # torch would run it in fp32 or fail deep inside
        raise ScreeningInputError("--fp16 needs a GPU (none is used here); on CPU use --bf16 or full precision")
    if fast_args.padding_bucket < 1:
        raise ScreeningInputError(f"--padding_bucket must be at least 1; got {fast_args.padding_bucket}")
    threshold_args.check()
    if cv_args.num_folds and not training_args.do_train:
        raise ScreeningInputError("--num_folds needs --do_train (each fold trains its own model)")
    if cv_args.num_folds and data_args.validation_file:
        raise ScreeningInputError("--num_folds uses each fold in turn for validation; drop --validation_file")


def threshold_rule(threshold_args, model_name_or_path):
    """The threshold rule of this run: the flags given, else those saved with a screening model in
    `model_name_or_path` (a local folder), else best F-beta."""
    saved = None
    config_file = Path(model_name_or_path) / "config.json"
    if config_file.is_file():
        try:
            saved = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError:
            saved = None  # load_model reports an unreadable folder
        if not isinstance(saved, dict) or saved.get("model_type") != "screening":
            saved = None
    return threshold_args.resolved(saved)


def load_data(data_args, training_args):
    """Train / validation / test DataFrames of a single run (None where not needed), from files or the splits of
    --dataset_name."""
    cols, id_col, label_col = data_args.text_column_list, data_args.id_column, data_args.label_column
    sources = data_args.data_sources(test=training_args.do_predict, require_test=True)
    train_source, validation_source, test_source = sources
    train = validation = test = None
    if train_source and (training_args.do_train or not validation_source):
        train = load_split(train_source, cols, id_col, label_col, "--train_file")
    if validation_source and (training_args.do_train or training_args.do_eval):
        validation = load_split(validation_source, cols, id_col, label_col, "--validation_file")
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
        test = load_split(test_source, cols, id_col, None, "--test_file")
    train = first_rows(train, data_args.max_train_samples)
    validation = first_rows(validation, data_args.max_eval_samples)
    test = first_rows(test, data_args.max_predict_samples)
    if training_args.do_train:
        check_two_classes(train["labels"], train_source, "--train_file")
    if training_args.do_eval:  # the threshold is tuned on it
        if validation_source:
            check_two_classes(validation["labels"], validation_source, "--validation_file", "validation data")
        else:
            fix = "give validation data or a larger --validation_split_percentage"
            check_two_classes(validation["labels"], train_source, "--train_file", "validation split", fix)
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
    """A tokenized `datasets.Dataset` (input ids, attention mask, length[, labels]) of one split
    (screening.tokenization.tokenize_frame), made by the main process first so that the others load its cache."""
    with training_args.main_process_first(desc=desc):
        return tokenize_frame(
            frame,
            tokenizer,
            data_args.text_column_list,
            max_length,
            options=text_options,
            separator=data_args.text_separator,
            padding="max_length" if data_args.pad_to_max_length else False,
            cache_dir=cache_dir,
            num_proc=data_args.preprocessing_num_workers,
            desc=desc,
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
    """The tokenizer and the screening model (a new head on an encoder, or a saved screening model) with the
    flags' config overrides; a folder or Hub id that does not load is a one-line error naming its flag."""
    overrides = model_args.config_overrides()
    pos_weight = resolve_pos_weight(model_args.pos_weight, train) if train is not None else None
    if pos_weight is not None:
        overrides["pos_weight"] = pos_weight
    overrides.setdefault("cnn_seq_length", data_args.max_seq_length)
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    hub_kwargs["trust_remote_code"] = model_args.trust_remote_code
    flag = "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path"
    try:
        name = model_args.tokenizer_name or model_args.model_name_or_path
        tokenizer = AutoTokenizer.from_pretrained(name, **hub_kwargs)
        flag = "--model_name_or_path"
        model = ScreeningForSequenceClassification.from_pretrained(
            model_args.model_name_or_path,
            attn_implementation=model_args.attn_implementation,
            attention_dropout=model_args.attention_dropout,
            **hub_kwargs,
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


def train_and_predict(setup, training_args, train, validation, test, checkpoint=None):
    """Train (with `--do_train`), choose the threshold on `validation` (`--do_eval`) and predict `test`
    (`--do_predict`) into `training_args.output_dir`: the model with its threshold, the *_results.json files,
    the trainer state, the text options, the validation report and the model card. The prediction CSVs are the
    caller's (`run` or the K-fold driver). Returns the summary figures, the report figures, the threshold and the
    validation and test probabilities."""
    model_args, data_args, fast_args, rule = setup.model_args, setup.data_args, setup.fast_args, setup.rule
    if training_args.do_train and data_args.negative_sampling_ratio is not None:
        total = len(train)
        train = sample_negatives(train, data_args.negative_sampling_ratio, training_args.seed)
        positives = int(train["labels"].sum())
        logger.info(
            f"Negative sampling: training on {positives} positives and {len(train) - positives} of "
            f"{total - positives} negatives (ratio {data_args.negative_sampling_ratio:g})"
        )
    tokenizer, model = load_model(model_args, data_args, train)
    add_separator_token(tokenizer, model, setup.text_options)
    max_length = resolve_max_length(data_args.max_seq_length, tokenizer, model)
    cache_dir = (fast_args.tokenization_cache_dir or default_cache_dir()) if fast_args.cache_tokenization else None
    tokenized = partial(
        tokenize,
        tokenizer=tokenizer,
        data_args=data_args,
        max_length=max_length,
        training_args=training_args,
        cache_dir=cache_dir,
        text_options=setup.text_options,
    )
    train_ds = tokenized(train, desc="Tokenizing train") if training_args.do_train else None
    evaluates = validation is not None and (training_args.do_train or training_args.do_eval)
    eval_ds = tokenized(validation, desc="Tokenizing validation") if evaluates else None
    test_ds = tokenized(test, desc="Tokenizing test") if test is not None else None
    lower_states = None
    if model_args.freeze_layers:
        try:
            model.freeze_lower_layers(model_args.freeze_layers)
        except ValueError as err:
            raise ScreeningInputError(f"--freeze_layers {model_args.freeze_layers}: {err}") from None
        with training_args.main_process_first(desc="Frozen layers"):
            model.to(training_args.device)
            splits, lower_states = attach_lower_states([train_ds, eval_ds, test_ds], model, cache_dir)
        train_ds, eval_ds, test_ds = splits
    model.config.beta = data_args.beta
    compute_metrics = make_compute_metrics(data_args.beta, rule)
    trainer = build_trainer(
        model, tokenizer, training_args, fast_args, train_ds, eval_ds, compute_metrics, max_length, lower_states
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
            outputs.save_metrics(out, "train", metrics, all_metrics)
            outputs.save_trainer_state(trainer, out)
    if main_process and (training_args.do_train or training_args.do_eval):
        save_text_options(out, setup.text_options)  # a loaded model rebuilds its inputs the same way

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
            outputs.save_metrics(out, "eval", metrics, all_metrics)
        summary.update({k: metrics.get(f"eval_{k}") for k in SUMMARY_KEYS})

    if training_args.do_predict:
        logger.info(f"*** Predict at threshold {model.config.threshold:.6g} ***")
        test_probabilities = sigmoid(trainer.predict(test_ds, metric_key_prefix="predict").predictions)
        predicted = apply_threshold(test_probabilities, model.config.threshold)
        predict_metrics = predict_figures(model.config, predicted)
        if main_process:
            outputs.save_metrics(out, "predict", predict_metrics, all_metrics)
        summary.update(predicted_includes=int(predicted.sum()), predicted_records=len(predicted))
        if predict_metrics["predict_expected_missed"] is not None:
            summary.update(expected_missed=predict_metrics["predict_expected_missed"])
    report = {**eval_metrics, **predict_metrics}
    if main_process and eval_probabilities is not None:
        write_report(out, validation["labels"], eval_probabilities, report, f"{out.name}: validation")

    if main_process and (training_args.do_train or training_args.do_eval):
        settings = hub.training_settings(model_args, data_args, training_args, model)
        dataset = hub.dataset_description(data_args, train, validation) if validation is not None else None
        train_records = len(train_ds) if train_ds is not None else None
        card = hub.model_card(training_args.hub_model_id or out.name, eval_metrics, settings, dataset, train_records)
        hub.write_model_card(out, card)
    return {
        "summary": summary,
        "report": report,
        "threshold": model.config.threshold,
        "eval_probabilities": eval_probabilities,
        "test_probabilities": test_probabilities,
    }


def run(setup):
    """One run into --output_dir: train, choose the threshold on the validation data, predict the test data,
    and write eval_predictions.csv, predictions.csv and submission.csv. Returns (summary, report figures)."""
    data_args, training_args = setup.data_args, setup.training_args
    # Every check of the user's input runs before Trainer(...) creates output_dir.
    checkpoint = outputs.resolve_output_dir(
        training_args.output_dir,
        outputs.RUN_RESULT_FILES,
        training_args.do_train,
        data_args.overwrite_output_dir,
        training_args.resume_from_checkpoint,
    )
    set_seed(training_args.seed)
    train, validation, test = load_data(data_args, training_args)
    result = train_and_predict(setup, training_args, train, validation, test, checkpoint)
    if training_args.process_index == 0:
        out, threshold = training_args.output_dir, result["threshold"]
        if result["eval_probabilities"] is not None:
            labels = validation["labels"].to_numpy()
            outputs.write_eval_predictions(out, validation["id"], result["eval_probabilities"], labels, threshold)
        if result["test_probabilities"] is not None:
            outputs.write_predictions(out, test["id"], result["test_probabilities"], threshold)
    return result["summary"], result["report"]


def fit_fold(setup, fold_train, valid, test, fold_dir):
    """A `fit_fold` for screening.kfold.run_kfold (bind `setup` with functools.partial): one fine-tune run into
    `fold_dir`, validated on the fold; an unfinished fold resumes from its last complete checkpoint."""
    training_args = setup.training_args
    fold_args = copy.deepcopy(training_args)
    fold_args.output_dir, fold_args.do_eval = str(fold_dir), True
    if fold_args.run_name in (None, training_args.output_dir):
        fold_args.run_name = str(fold_dir)
    checkpoint = None
    if fold_dir.is_dir() and not setup.data_args.overwrite_output_dir:
        checkpoint = outputs.last_complete_checkpoint(fold_dir)
    set_seed(training_args.seed)
    result = train_and_predict(setup, fold_args, fold_train, valid, test, checkpoint)
    if training_args.process_index == 0:  # the fold's best model is saved in fold_dir itself
        for path in fold_dir.glob("checkpoint-*"):
            shutil.rmtree(path, ignore_errors=True)
    return FoldOutput(result["eval_probabilities"], result["test_probabilities"])


def cross_validate(setup):
    """K-fold: `fit_fold` on every fold into output_dir/fold_<k>, then OOF and fold-averaged test predictions
    (screening.kfold.run_kfold). Finished folds are skipped on a rerun. Returns (summary, K-fold results)."""
    data_args, training_args, cv_args = setup.data_args, setup.training_args, setup.cv_args
    train_source, _, test_source = data_args.data_sources(
        validation=False, test=training_args.do_predict, require_test=True
    )
    train, test, groups = load_kfold_data(
        train_source,
        test_source,
        data_args.text_column_list,
        data_args.id_column,
        data_args.label_column,
        cv_args.group_column,
        max_train=data_args.max_train_samples,
        max_test=data_args.max_predict_samples,
    )
    results = run_kfold(
        train,
        test,
        partial(fit_fold, setup),
        training_args.output_dir,
        cv_args,
        beta=data_args.beta,
        groups=groups,
        overwrite=data_args.overwrite_output_dir,
        main_process=training_args.process_index == 0,
        command=" ".join(sys.argv),
        rule=setup.rule,
        train_file=train_source,
    )
    return summary_figures(results), results


def push(output_dir, training_args):
    """Upload the run's model, tokenizer, metrics and card (screening.hub.hub_files) in one commit."""
    repo_id = training_args.hub_model_id or Path(output_dir).resolve().name
    commit = hub.push_to_hub(
        output_dir,
        repo_id,
        token=training_args.hub_token,
        private=training_args.hub_private_repo,
        revision=training_args.hub_revision,
    )
    logger.info(f"Pushed {', '.join(hub.hub_files(output_dir))} to {commit.commit_url}")
