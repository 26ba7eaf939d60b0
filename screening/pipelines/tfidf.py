"""TF-IDF + a linear model (scikit-learn) as a K-fold run type: the classic baseline, and a stacking member.

It runs through the same K-fold loop as the transformer (screening.kfold.run_kfold), so it writes the same
oof.csv, kfold_results.json, predictions.csv, submission.csv and report."""

from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.utils.class_weight import compute_sample_weight

from ..cli import parse_args
from ..errors import ScreeningInputError
from ..kfold import FoldOutput
from ..metrics import ThresholdArguments
from ..text import TextArguments, prepare_texts
from .sklearn import RunArguments, SklearnCrossValidationArguments, run_sklearn_kfold

CLASSIFIERS = ("lr", "nb")


@dataclass
class TfidfArguments:
    """TF-IDF features and the linear model on them."""

    classifier: str = field(
        default="lr", metadata={"help": "'lr': logistic regression; 'nb': complement naive Bayes (both balanced)."}
    )
    C: float = field(default=10.0, metadata={"help": "Inverse regularisation of the logistic regression."})
    ngram_max: int = field(default=2, metadata={"help": "Longest word n-gram."})
    min_df: int = field(default=2, metadata={"help": "Drop n-grams in fewer records than this."})
    nb_alpha: float = field(
        default=1.0,
        metadata={
            "help": "Additive smoothing of complement naive Bayes (scikit-learn's default; 0.3 scored 0.04 lower on "
            "the six shared reviews over five fold seeds: benchmarks/quality_notes.md)."
        },
    )


def tfidf_vectorizer(ngram_max=2, min_df=2, max_df=1.0):
    """Sublinear TF-IDF of word 1..`ngram_max`-grams seen in at least `min_df` records and at most a `max_df` share
    of them (every TF-IDF model here)."""
    return TfidfVectorizer(ngram_range=(1, ngram_max), min_df=min_df, max_df=max_df, sublinear_tf=True)


def make_tfidf_model(args):
    vectorizer = tfidf_vectorizer(args.ngram_max, args.min_df)
    if args.classifier == "lr":
        model = LogisticRegression(C=args.C, class_weight="balanced", max_iter=2000, solver="liblinear")
    elif args.classifier == "nb":
        model = ComplementNB(alpha=args.nb_alpha)
    else:
        raise ScreeningInputError(f"--classifier must be one of {', '.join(CLASSIFIERS)}; got {args.classifier!r}")
    return vectorizer, model


def tfidf_fit_fold(args, text_options, text_columns):
    """A `fit_fold` for run_kfold: vectorise on the fold's training texts, fit with balanced classes, predict."""

    def texts(frame):
        return prepare_texts(frame, text_columns, " ", text_options)

    def fit_fold(fold_train, valid, test, fold_dir):
        vectorizer, model = make_tfidf_model(args)
        features = vectorizer.fit_transform(texts(fold_train))
        labels = fold_train["labels"].to_numpy()
        model.fit(features, labels, sample_weight=compute_sample_weight("balanced", labels))
        valid_probs = model.predict_proba(vectorizer.transform(texts(valid)))[:, 1]
        test_probs = None if test is None else model.predict_proba(vectorizer.transform(texts(test)))[:, 1]
        return FoldOutput(np.asarray(valid_probs), test_probs)

    return fit_fold


def main(argv=None):
    run_args, tfidf_args, cv_args, text_args, threshold_args = parse_args(
        (RunArguments, TfidfArguments, SklearnCrossValidationArguments, TextArguments, ThresholdArguments), argv
    )
    columns = run_args.text_column_list

    def make_fit_fold(train, test, options):
        return tfidf_fit_fold(tfidf_args, options, columns)

    return run_sklearn_kfold(run_args, cv_args, text_args, make_fit_fold, argv, threshold_args=threshold_args)
