"""Include/exclude labels from a `text-classification` pipeline at the model's tuned threshold.

A screening model has one logit; the pipeline applies a sigmoid and reports it under the label
`include`, so its `score` is P(include) for every record. These helpers name each record
`include` or `exclude` by comparing that score with `model.config.threshold`:

    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)
    screen(classifier, ["A title [SEP] its abstract"])  # [{"label": "exclude", "probability": 0.004}]
"""

from .metrics import apply_threshold


def screening_labels(outputs, threshold):
    """[{"label": "include" | "exclude", "probability": P(include)}] from pipeline outputs.

    `outputs`: what the pipeline returned for a list of texts, with the default `top_k` (one dict per
    text) or `top_k=None` (one list of dicts per text). A record is included iff `probability >= threshold`.
    """
    labelled = []
    for output in outputs:
        scores = output if isinstance(output, list) else [output]
        probability = next(s["score"] for s in scores if s["label"] == "include")
        label = "include" if apply_threshold(probability, threshold) else "exclude"
        labelled.append({"label": label, "probability": probability})
    return labelled


def screen(classifier, texts, **pipeline_kwargs):
    """Run `classifier` (a text-classification pipeline of a screening model; inputs truncated to the
    tokenizer's limit) and label each text at the model's threshold."""
    pipeline_kwargs = {"function_to_apply": "sigmoid", "truncation": True, **pipeline_kwargs}
    outputs = classifier(list(texts), **pipeline_kwargs)
    return screening_labels(outputs, classifier.model.config.threshold)
