"""Run types, each a module on the one K-fold driver (screening.kfold): fine-tune, TF-IDF, features, stacking."""
