"""The shared base of the scikit-learn pipelines (TF-IDF, transformer features): their data and output
arguments, and the K-fold run around a pipeline's `fit_fold`."""

import sys
from dataclasses import dataclass, field

from ..cli import print_summary
from ..data import DatasetArguments, load_kfold_data
from ..errors import ScreeningInputError
from ..kfold import CrossValidationArguments, run_kfold, summary_figures
from ..metrics import ThresholdArguments
from ..text import resolve_text_options


@dataclass(kw_only=True)
class RunArguments(DatasetArguments):
    """Data and output of a scikit-learn K-fold run (the same flags as run_classification.py)."""

    train_file: str | None = field(
        default=None, metadata={"help": "Labelled training data (.csv or .jsonl); or give --dataset_name."}
    )
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
class SklearnCrossValidationArguments(CrossValidationArguments):
    """K-fold cross-validation of a scikit-learn pipeline (always K-fold: 5 folds unless told)."""

    num_folds: int = field(
        default=5,
        metadata={
            "help": "Folds of the stratified K-fold split of --train_file (K >= 2). A rerun skips folds whose "
            "fold_<k>/fold_results.json exists."
        },
    )

    def check(self):
        if self.num_folds < 2:
            raise ScreeningInputError(f"--num_folds must be at least 2; got {self.num_folds}")
        super().check()


def run_sklearn_kfold(run_args, cv_args, text_args, make_fit_fold, argv=None, model_dir=None, threshold_args=None):
    """Load, run K folds with `make_fit_fold(train, test, text_options)` (its text options: the flags over those
    saved with a screening model in `model_dir`), thresholds chosen by `threshold_args` (a ThresholdArguments;
    default best F-beta), and print the summary. Returns the K-fold results."""
    rule = (threshold_args or ThresholdArguments()).resolved()  # a bad value stops the run before any work
    text_options = resolve_text_options(text_args, model_dir)
    train_source, _, test_source = run_args.data_sources(validation=False)
    if train_source is None:
        raise ScreeningInputError("give the labelled data: --train_file or --dataset_name")
    train, test, groups = load_kfold_data(
        train_source,
        test_source,
        run_args.text_column_list,
        run_args.id_column,
        run_args.label_column,
        cv_args.group_column,
    )
    results = run_kfold(
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
        train_file=train_source,
    )
    print_summary(summary_figures(results), results, run_args.output_dir)
    return results
