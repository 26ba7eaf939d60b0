"""The model card (README.md with a model-index) of a trained screening model, and its upload to the Hub.

The upload is one commit of an explicit file set (`hub_files`): the model (config with `auto_map`, the
`modeling/` code, safetensors weights), the tokenizer, the metrics JSONs and the card. Predictions of the
user's data (`*.csv`), checkpoints and pickles (`training_args.bin`) stay local.
"""

import fnmatch
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, ModelCardData
from huggingface_hub.repocard_data import EvalResult

from . import outputs

HUB_PATTERNS = (
    "README.md",
    "config.json",
    "*.py",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    outputs.ALL_RESULTS,
    outputs.results_file("eval"),
    outputs.results_file("train"),
)
CARD_METRICS = ("fbeta", "threshold", "recall", "precision", "roc_auc", "average_precision", "wss_95")
CARD_METRICS += ("recall_ci_low", "recall_ci_high", "read_share", "wss", "all_positive_fbeta")


def hub_files(output_dir):
    """Names of the files in `output_dir` that a push uploads (top level only, sorted)."""
    names = sorted(p.name for p in Path(output_dir).iterdir() if p.is_file())
    return [n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in HUB_PATTERNS)]


def training_settings(model_args, data_args, training_args, model):
    """The settings a reader needs to reproduce a run, as plain values for the card."""
    config = model.config
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    return {
        "model_name_or_path": str(model_args.model_name_or_path),
        "encoder": config.encoder_config.model_type,
        "head_type": config.head_type,
        "loss_type": config.loss_type,
        "pos_weight": config.pos_weight,
        "label_smoothing": config.label_smoothing,
        "max_seq_length": data_args.max_seq_length,
        "num_train_epochs": training_args.num_train_epochs,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "world_size": training_args.world_size,
        "learning_rate": training_args.learning_rate,
        "seed": training_args.seed,
        "precision": precision,
        "deepspeed": training_args.deepspeed if isinstance(training_args.deepspeed, str) else None,
        "beta": config.beta,
        "threshold_objective": getattr(config, "threshold_objective", "fbeta"),
        "target_recall": getattr(config, "target_recall", None),
        "recall_confidence": getattr(config, "recall_confidence", None),
    }


def dataset_description(data_args, train, validation):
    """(name, type, split) naming the data the threshold and metrics come from."""
    if data_args.dataset_name:
        _, split, _ = data_args.data_sources(test=False)
        name = kind = data_args.dataset_name
        where = f"split {split.split!r} of {name}" if split else None
    else:
        source = data_args.validation_file or data_args.train_file
        where = Path(source).name if data_args.validation_file else None
        name, kind = Path(source).name, Path(source).stem
    if where is None:
        where = f"{data_args.validation_split_percentage:g}% stratified hold-out of {name}"
    return f"{where} ({len(validation)} records)", kind, "validation"


def model_card(model_name, metrics, settings, dataset, train_records=None):
    """A `ModelCard` whose model-index holds the validation metrics; the F-beta entry's args hold beta, the
    tuned threshold and the training settings."""
    dataset_name, dataset_type, split = dataset or (None, None, None)
    beta, threshold = settings["beta"], metrics.get("eval_threshold")
    results = [
        EvalResult(
            task_type="text-classification",
            task_name="Screening (include/exclude)",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=name,
            metric_name=f"F{beta:g}" if name == "fbeta" else name,
            metric_value=float(metrics[f"eval_{name}"]),
            metric_args={"beta": beta, "threshold": threshold, "training": settings} if name == "fbeta" else None,
        )
        for name in CARD_METRICS
        if dataset is not None and metrics.get(f"eval_{name}") is not None
    ]
    base_model = settings["model_name_or_path"]
    data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["screening", "systematic-review", "text-classification", "custom_code"],
        base_model=None if Path(base_model).exists() else base_model,
        eval_results=results or None,
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
    if settings.get("threshold_objective") == "recall":
        confidence = settings["recall_confidence"]
        bound = "point estimate" if confidence == 0.5 else f"one-sided {confidence:.0%} Clopper-Pearson lower bound"
        chosen = f"chosen as the highest whose {bound} on recall reaches {settings['target_recall']:g}"
    else:
        chosen = f"tuned for F{beta:g}"
    metric_rows = "\n".join(f"| {r.metric_name} | {r.metric_value:.4g} |" for r in results)
    content = f"""---
{data.to_yaml()}
---

# {model_name}

Screens papers for a systematic review: from `title [SEP] abstract` it gives the probability that a
record is to be **included**. A record is included iff `probability >= config.threshold`
(threshold {threshold if threshold is not None else "not tuned"}, {chosen} on {dataset_name}; recall
there {_recall_text(metrics)}).
Trained with transformers-screening{f" on {train_records} records" if train_records else ""}.

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model = AutoModelForSequenceClassification.from_pretrained("{model_name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model_name}", trust_remote_code=True)
classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)
scores = classifier(["A title [SEP] its abstract"], truncation=True)  # score = P(include)
include = [s["score"] >= model.config.threshold for s in scores]
```

## Validation metrics

| metric | value |
|---|---|
{metric_rows}

## Training settings

| setting | value |
|---|---|
{rows}
"""
    return ModelCard(content)


def _recall_text(metrics):
    recall, low, high = (metrics.get(f"eval_{k}") for k in ("recall", "recall_ci_low", "recall_ci_high"))
    if recall is None or low is None or high is None:
        return "not measured"
    return f"{recall:.3f}, exact 95% interval {low:.3f}-{high:.3f}"


def write_model_card(output_dir, card):
    outputs.write_text(Path(output_dir) / "README.md", str(card))


def push_to_hub(output_dir, repo_id, token=None, private=None, revision=None, commit_message="End of training"):
    """Create `repo_id` if needed and upload `hub_files(output_dir)` in one commit; returns the `CommitInfo`."""
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(output_dir) / name))
        for name in hub_files(output_dir)
    ]
    return api.create_commit(repo_id, operations=operations, commit_message=commit_message, revision=revision)
