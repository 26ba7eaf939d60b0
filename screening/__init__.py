"""Library of the screening toolkit. Modules, leaves first:

errors        ScreeningInputError and the one-line error exit of every entry point
data          load and check tables (columns, ids, 0/1 labels)
text          build and clean each record's text; text options saved with a model
tokenization  encode (head / head+tail), added separator token, cached tokenized datasets
metrics       exact F-beta threshold search, recall targets with intervals, WSS, honest OOF figures
outputs       every run-folder file with its one writer and reader; the output folder's guard
report        threshold plot and summary.md of a run
kfold         fold split, run_kfold(fit_fold), fold ensembling, K-fold metrics
trainer       ScreeningTrainer (fast prediction path) and build_trainer
hub           model card and push to the Hub
cli           argument parsing and the closing summary shared by every entry point
predict       include/exclude labels from a text-classification pipeline
pipelines/    finetune, tfidf, features (over pipelines.sklearn), stacking
"""
