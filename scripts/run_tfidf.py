#!/usr/bin/env python
"""TF-IDF + logistic regression (or complement naive Bayes) on K folds: oof.csv, kfold_results.json,
fold-averaged predictions.csv/submission.csv and a report, in the same format as run_classification.py.

    python scripts/run_tfidf.py --train_file train.csv --test_file test.csv --output_dir out/tfidf --num_folds 5
"""

import _cli

if __name__ == "__main__":
    from screening.pipelines.tfidf import main

    _cli.exit_on_input_error(main)
