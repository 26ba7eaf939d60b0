"""TF-IDF + a linear model (scikit-learn) as a K-fold run type: the classic baseline, and a stacking member.

It runs through the same K-fold loop as the transformer (screening.kfold.run_kfold), so it writes the same
oof.csv, kfold_results.json, predictions.csv, submission.csv and report."""

import sys
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.utils.class_weight import compute_sample_weight

from .cli import parse_args
from .data import ScreeningInputError
from .kfold import CrossValidationArguments, FoldOutput, load_kfold_data, run_kfold
from .metrics import ThresholdArguments, recall_sentence
from .text import TextArguments, prepare_texts, resolve_text_options

CLASSIFIERS = ("lr", "nb")


@dataclass
class RunArguments:
    """Data and output of a scikit-learn K-fold run (the same flags as run_classification.py)."""

    train_file: str = field(metadata={"help": "Labelled training data (.csv or .jsonl)."})
    output_dir: str = field(metadata={"help": "Where oof.csv, kfold_results.json, predictions and fold_<k>/ go."})
    test_file: str | None = field(default=None, metadata={"help": "Data to predict (fold-averaged)."})
    text_columns: str = field(default="title,abstract", metadata={"help": "Comma-separated text columns."})
    label_column: str = field(default="judgement", metadata={"help": "Column of 0/1 labels (1 = include)."})
    id_column: str = field(default="id", metadata={"help": "Column of unique record ids."})
    beta: float = field(default=7.0, metadata={"help": "Beta of the F-beta score the threshold is tuned for."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Refit folds finished earlier."})

    @property
    def text_column_list(self):
        return [c.strip() for c in self.text_columns.split(",") if c.strip()]


@dataclass
class TfidfArguments:
    """TF-IDF features and the linear model on them."""

    classifier: str = field(
        default="lr", metadata={"help": "'lr': logistic regression; 'nb': complement naive Bayes (both balanced)."}
    )
    C: float = field(default=10.0, metadata={"help": "Inverse regularisation of the logistic regression."})
    ngram_max: int = field(default=2, metadata={"help": "Longest word n-gram."})
    min_df: int = field(default=2, metadata={"help": "Drop n-grams in fewer records than this."})
    nb_alpha: float = field(default=0.3, metadata={"help": "Smoothing of complement naive Bayes."})


def make_tfidf_model(args):
    vectorizer = TfidfVectorizer(ngram_range=(1, args.ngram_max), min_df=args.min_df, sublinear_tf=True)
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


def run_sklearn_kfold(run_args, cv_args, text_args, make_fit_fold, argv=None, model_dir=None, threshold_args=None):
    """Shared body of the scikit-learn run types: load, K-fold with `make_fit_fold(train, test, text_options)`,
    thresholds chosen by `threshold_args` (a ThresholdArguments; default best F-beta)."""
    rule = (threshold_args or ThresholdArguments()).resolved()  # a bad value stops the run before any work
    cv_args.num_folds = cv_args.num_folds or 5
    cv_args.check()
    text_options = resolve_text_options(text_args, model_dir)
    train, test, groups = load_kfold_data(
        run_args.train_file,
        run_args.test_file,
        run_args.text_column_list,
        run_args.id_column,
        run_args.label_column,
        cv_args.group_column,
    )
    return run_kfold(
        train,
        test,
        make_fit_fold(train, test, text_options),
        run_args.output_dir,
        cv_args,
        beta=run_args.beta,
        groups=groups,
        overwrite=run_args.overwrite_output_dir,
        command=" ".join(argv or sys.argv),
        rule=rule,
    )


def print_summary(results, output_dir):
    keys = ("honest_oof_fbeta", "oof_fbeta", "oof_threshold", "oof_roc_auc", "oof_wss_95", "oof_all_positive_fbeta")
    figures = " ".join(f"{k}={results[k]:.4f}" for k in keys if results.get(k) is not None)
    print(figures + "\n" + recall_sentence(results) + f"\nOutputs in {output_dir}")


def main(argv=None):
    run_args, tfidf_args, cv_args, text_args, threshold_args = parse_args(
        (RunArguments, TfidfArguments, CrossValidationArguments, TextArguments, ThresholdArguments), argv
    )
    columns = run_args.text_column_list
    results = run_sklearn_kfold(
        run_args,
        cv_args,
        text_args,
        lambda train, test, options: tfidf_fit_fold(tfidf_args, options, columns),
        argv,
        threshold_args=threshold_args,
    )
    print_summary(results, run_args.output_dir)
    return results
