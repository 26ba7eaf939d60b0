"""Transformer features for classic models (the seed's BERT -> LightGBM path): embed every record once with
any encoder or fine-tuned screening checkpoint (CLS or mean pooling), cache the matrix, then fit logistic
regression or LightGBM on the same K folds as every other run type."""

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer

from modeling.heads import masked_mean

from ..cli import parse_args
from ..errors import ScreeningInputError
from ..kfold import FoldOutput
from ..metrics import ThresholdArguments
from ..text import TextArguments, prepare_texts
from ..tokenization import encode
from ..trainer import PRECISIONS, fast_bf16_available
from .sklearn import RunArguments, SklearnCrossValidationArguments, run_sklearn_kfold

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean")
CLASSIFIERS = ("lr", "lightgbm")
SCALINGS = ("l2", "standard", "none")


@dataclass
class FeatureArguments:
    """Which encoder embeds the records, how, and the classifier fitted on the embeddings."""

    model_name_or_path: str = field(
        metadata={"help": "An encoder checkpoint, or a screening model saved by run_classification.py (its encoder)."}
    )
    pooling: str = field(default="mean", metadata={"help": "'cls' ([CLS] vector) or 'mean' (over real tokens)."})
    max_seq_length: int = field(default=256, metadata={"help": "Longest input in tokens."})
    batch_size: int = field(default=64, metadata={"help": "Records per forward pass."})
    precision: str = field(
        default="auto",
        metadata={
            "help": "Precision of the encoder's forward pass: 'auto' = bf16 autocast where bf16 runs on hardware (a "
            "CUDA GPU with bf16, or a CPU with AMX or AVX512-BF16: 1.7x the records/s of fp32 on 2 such cores, every "
            "vector within cosine 0.9999, benchmarks/embedding.md) and fp32 elsewhere; 'fp32' or 'bf16' force one "
            "(bf16 on a CPU without bf16 units is emulated and slow). The pooled vectors are float32.",
            "choices": PRECISIONS,
        },
    )
    bf16: bool = field(default=False, metadata={"help": "The same as --precision bf16 (kept for older commands)."})
    disable_tqdm: bool = field(
        default=False, metadata={"help": "No progress bar while embedding (none is shown where stderr is not a TTY)."}
    )
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "Cache embeddings here (keyed by model, texts and settings); reused later."}
    )
    feature_scaling: str = field(
        default="l2",
        metadata={
            "help": "What the logistic regression sees: 'l2' each vector scaled to unit length (the "
            "sentence-transformers recipe: pooled, then normalised), 'standard' each dimension standardised on "
            "the fold's training part, or 'none' the pooled vectors as they are. Applied after the feature cache.",
            "choices": SCALINGS,
        },
    )
    classifier: str = field(default="lr", metadata={"help": "'lr' (balanced logistic regression) or 'lightgbm'."})
    C: str = field(
        default="1.0",
        metadata={
            "help": "Inverse regularisation of the logistic regression: a number, or 'auto' to choose it per fold "
            "by an inner stratified 3-fold CV on that fold's training part (average precision over C = 1e-4 .. "
            "10; the held-out fold is never seen; fold scores then sit at different levels: add "
            "--fold_normalization rank)."
        },
    )
    lgbm_estimators: int = field(default=300, metadata={"help": "LightGBM boosting rounds."})

    def __post_init__(self):
        if self.bf16:
            if self.precision == "fp32":
                raise ScreeningInputError("--bf16 and --precision fp32 contradict each other; pass one")
            self.precision = "bf16"
        if self.precision not in PRECISIONS:
            raise ScreeningInputError(f"--precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")


def load_encoder(path):
    """The encoder of `path` (for a screening model: its `encoder`) and its tokenizer."""
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    if config.model_type == "screening":
        from modeling import ScreeningForSequenceClassification

        encoder = ScreeningForSequenceClassification.from_pretrained(path).encoder
    else:
        encoder = AutoModel.from_pretrained(path)
    return encoder.eval(), AutoTokenizer.from_pretrained(path)


PADDING_BUCKET = 16
"""bf16 batches are padded to a multiple of this many tokens (at most the max length): bf16 CPU kernels keep state
per input shape, so few distinct lengths keep the memory flat (see FastPathArguments.padding_bucket)."""


@torch.inference_mode()
def embed(
    encoder, tokenizer, texts, options, pooling="mean", max_length=256, batch_size=64, bf16=False, progress=False
):
    """One vector per text (float32, in the order of `texts`): [CLS] or the mean over real tokens of the last layer,
    on the encoder's device (run_features.py puts it on the GPU when there is one), under bf16 autocast when `bf16`.
    Batches are cut from the texts sorted by length, so little padding is computed; `progress` shows a bar over
    the records (records/s) where stderr is a TTY."""
    if pooling not in POOLINGS:
        raise ScreeningInputError(f"--pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    limits = [max_length, getattr(encoder.config, "max_position_embeddings", max_length), tokenizer.model_max_length]
    limit = min(limits)
    encoded = encode(tokenizer, texts, limit, options)
    order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
    device = next(encoder.parameters()).device
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    bar = tqdm(total=len(texts), unit="records", desc="Embedding", disable=None if progress else True)
    with bar, torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):  # one context: weights cast once
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            longest = len(encoded["input_ids"][rows[0]])
            padded = max(min(-(-longest // PADDING_BUCKET) * PADDING_BUCKET, limit), longest) if bf16 else longest
            batch = {k: [encoded[k][i] for i in rows] for k in encoded}
            batch = tokenizer.pad(batch, padding="max_length", max_length=padded, return_tensors="pt").to(device)
            hidden = encoder(**batch).last_hidden_state.float()
            vectors = hidden[:, 0] if pooling == "cls" else masked_mean(hidden, batch["attention_mask"])
            out[rows] = vectors.cpu().numpy()
            bar.update(rows.size)
    return out


def embedding_precision(precision, device):
    """'bf16' or 'fp32': the precision `precision` ('auto', 'fp32', 'bf16') means on `device` (auto: bf16 where
    bf16 runs on hardware, `screening.trainer.fast_bf16_available`)."""
    if precision == "auto":
        return "bf16" if fast_bf16_available(device) else "fp32"
    return precision


def text_separator(model_name_or_path):
    """What joins a record's text columns before embedding: the tokenizer's separator token."""
    return AutoTokenizer.from_pretrained(model_name_or_path).sep_token or "|"


def cached_embeddings(args, texts, options):
    """Embeddings of `texts`, read from / written to `args.feature_cache_dir` when set (keyed by the model, the
    texts and the settings, the precision as run: an 'auto' run on a bf16 CPU reads what a 'bf16' run wrote)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = embedding_precision(args.precision, device)
    path = None
    if args.feature_cache_dir:
        key = {
            "model": str(Path(args.model_name_or_path).resolve()),
            "pooling": args.pooling,
            "max_seq_length": args.max_seq_length,
            "precision": precision,
            "truncation": [options.truncation, options.head_tokens],
            "texts": hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        path = Path(args.feature_cache_dir) / f"{digest}.npy"
        if path.is_file():
            logger.info(f"Embeddings from the cache: {path}")
            return np.load(path)
    encoder, tokenizer = load_encoder(args.model_name_or_path)
    encoder.to(device)
    start = time.perf_counter()
    features = embed(
        encoder, tokenizer, texts, options, args.pooling, args.max_seq_length, args.batch_size,
        bf16=precision == "bf16", progress=not args.disable_tqdm,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    logger.info(f"Embedded {len(texts)} records in {seconds:.0f}s ({len(texts) / seconds:.1f} records/s, {precision})")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, features)
        tmp.replace(path)
    return features


AUTO_CS = np.logspace(-4, 1, 11)


def make_classifier(args, labels):
    if args.classifier == "lr":
        if str(args.C) == "auto":
            folds = StratifiedKFold(3, shuffle=True, random_state=0)
            model = LogisticRegressionCV(
                Cs=AUTO_CS,
                cv=folds,
                scoring="average_precision",
                class_weight="balanced",
                max_iter=3000,
                l1_ratios=(0,),
                use_legacy_attributes=False,
            )
        else:
            try:
                model = LogisticRegression(C=float(args.C), class_weight="balanced", max_iter=3000)
            except ValueError:
                raise ScreeningInputError(f"--C must be a number or 'auto'; got {args.C!r}") from None
        scaler = {"l2": Normalizer(), "standard": StandardScaler(), "none": "passthrough"}[args.feature_scaling]
        return make_pipeline(scaler, model)
    if args.classifier == "lightgbm":
        from lightgbm import LGBMClassifier

        positives = max(int(labels.sum()), 1)
        return LGBMClassifier(
            n_estimators=args.lgbm_estimators,
            learning_rate=0.05,
            num_leaves=15,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.5,
            scale_pos_weight=(labels.size - positives) / positives,
            n_jobs=2,
            verbose=-1,
        )
    raise ScreeningInputError(f"--classifier must be one of {', '.join(CLASSIFIERS)}; got {args.classifier!r}")


def features_fit_fold(args, train_features, test_features, train_ids):
    """A `fit_fold` for run_kfold on precomputed feature rows (looked up by record id)."""
    row = {i: n for n, i in enumerate(train_ids)}

    def fit_fold(fold_train, valid, test, fold_dir):
        x_train = train_features[[row[i] for i in fold_train["id"]]]
        labels = fold_train["labels"].to_numpy()
        model = make_classifier(args, labels).fit(x_train, labels)
        valid_probs = model.predict_proba(train_features[[row[i] for i in valid["id"]]])[:, 1]
        test_probs = None if test is None else model.predict_proba(test_features)[:, 1]
        return FoldOutput(np.asarray(valid_probs), test_probs)

    return fit_fold


def main(argv=None):
    run_args, feature_args, cv_args, text_args, threshold_args = parse_args(
        (RunArguments, FeatureArguments, SklearnCrossValidationArguments, TextArguments, ThresholdArguments), argv
    )
    threshold_args.check()  # before the embeddings are computed
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(message)s")
    columns = run_args.text_column_list

    def make_fit_fold(train, test, options):
        separator = text_separator(feature_args.model_name_or_path)
        train_features = cached_embeddings(feature_args, prepare_texts(train, columns, separator, options), options)
        test_features = None
        if test is not None:
            test_texts = prepare_texts(test, columns, separator, options)
            test_features = cached_embeddings(feature_args, test_texts, options)
        return features_fit_fold(feature_args, train_features, test_features, list(train["id"]))

    # a fine-tuned screening model's saved text options apply, as in run_classification.py
    model_dir = feature_args.model_name_or_path
    return run_sklearn_kfold(run_args, cv_args, text_args, make_fit_fold, argv, model_dir, threshold_args)
