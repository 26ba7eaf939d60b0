#!/usr/bin/env python
"""Combine K-fold runs (run_classification.py --num_folds, scripts/run_tfidf.py, scripts/run_features.py) from
their oof.csv: rank or probability average, or logistic regression on the OOF; the threshold is searched on the
blended OOF and applied to the blended test predictions.

    python scripts/stack.py --runs out/tfidf out/features out/finetune --method rank --output_dir out/stack
"""

import _cli

if __name__ == "__main__":
    from screening.pipelines.stacking import main

    _cli.exit_on_input_error(main)
