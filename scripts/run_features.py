#!/usr/bin/env python
"""Embed records with an encoder or a fine-tuned screening model (CLS or mean pooling; cached), then fit
logistic regression or LightGBM on K folds: oof.csv, kfold_results.json, predictions.csv, submission.csv.

    python scripts/run_features.py --model_name_or_path <encoder or saved model> --pooling mean --bf16 \
        --train_file train.csv --test_file test.csv --output_dir out/features --num_folds 5 \
        --feature_cache_dir out/feature_cache --classifier lr
"""

import _cli

if __name__ == "__main__":
    from screening.pipelines.features import main

    _cli.exit_on_input_error(main)
