"""--push_to_hub without a network: the upload is recorded through huggingface_hub's own API (HfApi.create_repo
and HfApi.create_commit, whose CommitOperationAdd list is what would be sent) and the file set is checked;
that file set then loads in a fresh process with trust_remote_code, and works in a text-classification pipeline."""

import json
import os
import sys
import textwrap

import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoTokenizer, pipeline

from modeling import ScreeningForSequenceClassification
from screening.predict import screen, screening_labels

from .cli_runner import run_command
from .conftest import REPO, write_demo_train

REPO_ID = "someone/screening-tiny"
PUSHED = {
    "README.md",
    "all_results.json",
    "config.json",
    "configuration_screening.py",
    "eval_results.json",
    "heads.py",
    "losses.py",
    "model.safetensors",
    "modeling_screening.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "train_results.json",
}

# Runs run_classification.py with HfApi.create_repo / create_commit recording into a folder (the "Hub repo").
RECORDING_RUNNER = textwrap.dedent(
    """
    import json, runpy, shutil, sys
    from pathlib import Path
    from huggingface_hub import CommitInfo, HfApi, RepoUrl

    hub, script = Path(sys.argv[1]), sys.argv[2]
    sys.argv = [script, *sys.argv[3:]]
    log = []

    def create_repo(self, repo_id, **kwargs):
        log.append({"call": "create_repo", "repo_id": repo_id, "private": kwargs.get("private")})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, commit_message=None, **kwargs):
        names = []
        for op in operations:
            target = hub / op.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(op.path_or_fileobj, target)
            names.append(op.path_in_repo)
        log.append({"call": "create_commit", "repo_id": repo_id, "files": names, "message": commit_message})
        (hub.parent / "hub_calls.json").write_text(json.dumps(log))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{'0' * 40}", commit_message="",
                          commit_description="", oid="0" * 40)

    HfApi.create_repo, HfApi.create_commit = create_repo, create_commit
    runpy.run_path(script, run_name="__main__")
    """
)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """120 training rows with 12 positives, cut from the shipped demo data."""
    path = tmp_path_factory.mktemp("hub-data")
    write_demo_train(path, 12, 108)
    return path


@pytest.fixture(scope="module")
def pushed(small_data, tiny_encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    out, hub = root / "out", root / "hub"
    hub.mkdir()
    args = ["--model_name_or_path", tiny_encoder_dir, "--train_file", small_data / "train.csv"]
    args += ["--do_train", "--do_eval", "--output_dir", out, "--use_cpu", "--max_seq_length", 64]
    args += ["--num_train_epochs", 1, "--learning_rate", 1e-3, "--report_to", "none", "--seed", 5]
    args += ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", "hf_not_a_real_token"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # any real network call would fail
    result = run_command([sys.executable, "-c", RECORDING_RUNNER, hub, REPO / "run_classification.py", *args],
                         cwd=REPO, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, hub, json.loads((root / "hub_calls.json").read_text())


def test_push_uploads_exactly_the_model_files_in_one_commit(pushed):
    out, hub, calls = pushed
    assert [c["call"] for c in calls] == ["create_repo", "create_commit"]
    assert calls[0]["repo_id"] == calls[1]["repo_id"] == REPO_ID
    assert set(calls[1]["files"]) == PUSHED and len(calls[1]["files"]) == len(PUSHED)
    assert {p.name for p in hub.iterdir()} == PUSHED
    local = {p.name for p in out.iterdir() if p.is_file()}
    assert {"eval_predictions.csv", "training_args.bin", "trainer_state.json"} <= local - PUSHED  # kept local
    config = json.loads((hub / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_screening.ScreeningForSequenceClassification"
    )
    assert config["threshold"] == json.loads((hub / "eval_results.json").read_text())["eval_threshold"]


def test_model_card_model_index(pushed):
    _, hub, _ = pushed
    card = ModelCard.load(hub / "README.md")
    metrics = json.loads((hub / "eval_results.json").read_text())
    results = {r.metric_type: r for r in card.data.eval_results}
    assert card.data.model_name == REPO_ID and card.data.pipeline_tag == "text-classification"
    fbeta = results["fbeta"]
    assert fbeta.metric_value == pytest.approx(metrics["eval_fbeta"]) and fbeta.metric_name == "F7"
    assert fbeta.metric_args["threshold"] == metrics["eval_threshold"] and fbeta.metric_args["beta"] == 7.0
    assert results["threshold"].metric_value == metrics["eval_threshold"]
    assert fbeta.dataset_type == "train" and fbeta.dataset_split == "validation"
    assert "hold-out of train.csv (24 records)" in fbeta.dataset_name
    training = fbeta.metric_args["training"]
    assert training["max_seq_length"] == 64 and training["head_type"] == "cls" and training["world_size"] == 1
    assert training["learning_rate"] == 1e-3 and training["precision"] == "fp32"


def test_pushed_files_reproduce_logits_in_fresh_process(pushed, tmp_path):
    """from_pretrained(trust_remote_code=True) on the uploaded files alone, without this repo on the path."""
    out, hub, _ = pushed
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = dict(
        tokenizer(
            ["Wilson disease [SEP] copper chelation", "An unrelated title [SEP]"], padding=True, return_tensors="pt"
        )
    )
    model = ScreeningForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        expected = model(**batch).logits
    torch.save(batch, tmp_path / "batch.pt")
    script = f"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
assert not any(m.split('.')[0] in ('modeling', 'screening') for m in sys.modules)
m = AutoModelForSequenceClassification.from_pretrained({str(hub)!r}, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained({str(hub)!r}, trust_remote_code=True)  # as the README loads it
assert type(m).__module__.startswith('transformers_modules'), type(m).__module__
with torch.no_grad(): logits = m(**torch.load({str(tmp_path / "batch.pt")!r}))[0]
print(json.dumps({{"logits": logits.tolist(), "threshold": m.config.threshold}}))
"""
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    # no standard input: a prompt for remote code would fail or hang here
    result = run_command([sys.executable, "-c", script], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, rtol=0, atol=1e-6)
    assert loaded["threshold"] == json.loads((out / "eval_results.json").read_text())["eval_threshold"]


def test_pipeline_scores_and_include_exclude_labels(pushed):
    _, hub, _ = pushed
    model = ScreeningForSequenceClassification.from_pretrained(hub).eval()
    tokenizer = AutoTokenizer.from_pretrained(hub)
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    texts = pd.read_csv(REPO / "data" / "demo" / "test.csv", keep_default_na=False).head(6)
    texts = (texts.title + " [SEP] " + texts.abstract).tolist()
    outputs = classifier(texts, truncation=True)
    assert all(o["label"] == "include" for o in outputs)  # one logit: the score is P(include)
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        probabilities = model(**batch).logits.sigmoid().squeeze(-1)
    torch.testing.assert_close(torch.tensor([o["score"] for o in outputs]), probabilities, rtol=0, atol=1e-5)

    labelled = screen(classifier, texts)
    threshold = model.config.threshold
    assert [r["label"] for r in labelled] == ["include" if p >= threshold else "exclude" for p in probabilities]
    middle = float(probabilities.median())
    labels = [r["label"] for r in screening_labels(outputs, middle)]
    assert "include" in labels and "exclude" in labels
    assert screening_labels(classifier(texts[:2], top_k=None, truncation=True), threshold) == labelled[:2]
