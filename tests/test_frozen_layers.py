"""The partly frozen fine-tune (--freeze_layers): gradients only above the frozen layers, the cached lower-layer
outputs (equal to the encoder's own, invalidated by a new model, length or text options) and the saved model."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertModel

from modeling import ScreeningConfig, ScreeningForSequenceClassification
from screening import frozen_layers
from screening.frozen_layers import COLUMN, LowerStatesCollator, attach_lower_states
from screening.text import TextOptions
from screening.tokenization import tokenize_texts

from .conftest import tiny_encoder_config, write_demo_train
from .test_run_classification import run_script

TEXTS = ["Aspirin for the prevention of stroke in adults", "A survey of hospital staff", "Statins and mortality"]


def three_layer_model(tester, seed=0, **kwargs):
    config = ScreeningConfig(
        encoder_config=tiny_encoder_config(len(tester.vocab), num_hidden_layers=3).to_dict(), head_dropout=0.0, **kwargs
    )
    torch.manual_seed(seed)
    return ScreeningForSequenceClassification(config).eval()


def test_freeze_lower_layers_gradients_only_above(tester):
    model = three_layer_model(tester, head_type="mean")
    model.freeze_lower_layers(2)
    batch = tester.inputs()
    states = model.lower_layer_states(batch["input_ids"], batch["attention_mask"])
    model.train()
    model(lower_states=states, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss.backward()
    for name, param in model.named_parameters():
        frozen = name.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.", "encoder.encoder.layer.1."))
        assert param.requires_grad is not frozen, name
        if frozen:
            assert param.grad is None, name
        elif not name.startswith("encoder.pooler."):  # the mean head does not read the pooler
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert model.config.frozen_layers == 2


@pytest.mark.parametrize("head_type", ["mean", "cls", "pooler"])
def test_cached_states_give_the_full_encoders_logits(tester, head_type):
    model = three_layer_model(tester, head_type=head_type)
    model.freeze_lower_layers(1)
    batch = tester.inputs()
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        states = model.lower_layer_states(batch["input_ids"], batch["attention_mask"])
        cached = model(lower_states=states, attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-6)


def test_freeze_needs_a_layer_left_to_train(tester):
    model = three_layer_model(tester)
    with pytest.raises(ValueError, match="between 1 and 2"):
        model.freeze_lower_layers(3)


def tokenized(tester, max_length=16, options=None, texts=TEXTS):
    return tokenize_texts(texts, None, tester.tokenizer(), max_length, options=options or TextOptions())


def computed_rows(monkeypatch):
    """Count the records whose lower states are computed (not read from the cache)."""
    counted = []
    compute = frozen_layers.compute_states

    def counting(model, dataset, rows, batch_size=32):
        counted.extend(rows)
        return compute(model, dataset, rows, batch_size)

    monkeypatch.setattr(frozen_layers, "compute_states", counting)
    return counted


def test_cache_reused_and_invalidated_by_model_length_and_text_options(tester, tmp_path, monkeypatch):
    counted = computed_rows(monkeypatch)
    model = three_layer_model(tester)
    model.freeze_lower_layers(1)
    (ds,), store = attach_lower_states([tokenized(tester)], model, tmp_path)
    assert len(counted) == 3 and ds[COLUMN] == [0, 1, 2]
    first = np.asarray(store[ds[0][COLUMN]][COLUMN])
    with torch.no_grad():
        ids = torch.tensor([ds[0]["input_ids"]])
        expected = model.lower_layer_states(ids, torch.ones_like(ids))[0].numpy()
    np.testing.assert_allclose(first, expected, rtol=0, atol=1e-6)

    attach_lower_states([tokenized(tester)], model, tmp_path)  # the same records, model, length, options
    assert len(counted) == 3

    other = three_layer_model(tester, seed=1)
    other.freeze_lower_layers(1)
    attach_lower_states([tokenized(tester)], other, tmp_path)  # another model: new folder, all computed
    assert len(counted) == 6
    model.freeze_lower_layers(2)
    attach_lower_states([tokenized(tester)], model, tmp_path)  # more frozen layers: another model too
    assert len(counted) == 9
    assert len(list((tmp_path / COLUMN).iterdir())) == 3

    model = three_layer_model(tester)
    model.freeze_lower_layers(1)
    attach_lower_states([tokenized(tester, max_length=5)], model, tmp_path)  # shorter: every text is cut
    assert len(counted) == 12
    attach_lower_states([tokenized(tester, options=TextOptions(truncation="head_tail"), max_length=5)], model, tmp_path)
    assert len(counted) == 15  # head + tail keeps other tokens than the head
    attach_lower_states([tokenized(tester, texts=["Trial: " + t for t in TEXTS])], model, tmp_path)
    assert len(counted) == 18


def test_collator_pads_states_to_the_batch(tester):
    from transformers import DataCollatorWithPadding

    model = three_layer_model(tester)
    model.freeze_lower_layers(1)
    (ds,), store = attach_lower_states([tokenized(tester)], model)
    collate = LowerStatesCollator(DataCollatorWithPadding(tester.tokenizer()), store)
    batch = collate([{k: ds[i][k] for k in ("input_ids", "attention_mask", COLUMN)} for i in range(3)])
    assert batch[COLUMN].shape == (*batch["input_ids"].shape, 32)
    lengths = batch["attention_mask"].sum(1)
    shortest = int(lengths.argmin())
    assert batch[COLUMN][shortest, lengths[shortest] :].abs().sum() == 0


def test_run_classification_freeze_layers_trains_only_the_top(tester, tmp_path):
    torch.manual_seed(0)
    encoder = BertModel(tiny_encoder_config(len(tester.vocab), num_hidden_layers=3))
    encoder.save_pretrained(tmp_path / "encoder")
    tester.tokenizer().save_pretrained(tmp_path / "encoder")
    write_demo_train(tmp_path, 6, 34)
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--model_name_or_path", tmp_path / "encoder", "--train_file", tmp_path / "train.csv"]
    args += ["--output_dir", out, "--do_train", "--num_folds", 2, "--freeze_layers", 2, "--head_type", "mean"]
    args += ["--max_seq_length", 32, "--num_train_epochs", 2, "--per_device_train_batch_size", 8]
    args += ["--learning_rate", 1e-2, "--use_cpu", "--report_to", "none", "--tokenization_cache_dir", cache]
    result = run_script(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((cache / COLUMN).iterdir())) == 1  # one frozen model, each record computed once
    shards = [p for p in (cache / COLUMN).iterdir()][0].glob("shard-*")
    assert sum(json.loads((p / "state.json").read_text())["_data_files"] != [] for p in shards) >= 1

    fold = out / "fold_0"
    saved = AutoModelForSequenceClassification.from_pretrained(fold, trust_remote_code=True).eval()
    assert saved.config.frozen_layers == 2
    before, after = encoder.state_dict(), saved.encoder.state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        frozen = name.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1."))
        if frozen or name.startswith("pooler."):
            assert same, name
        elif name.startswith("encoder.layer.2.") and name.endswith("weight") and "LayerNorm" not in name:
            assert not same, name

    # the saved model predicts its validation records from text, with the whole encoder, as the run scored them
    valid = pd.read_csv(fold / "eval_predictions.csv")
    train = pd.read_csv(tmp_path / "train.csv", keep_default_na=False).set_index("id").loc[valid["id"]]
    texts = (train["title"] + " [SEP] " + train["abstract"]).tolist()
    tokenizer = tester.tokenizer()
    with torch.no_grad():
        batch = tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
        probabilities = torch.sigmoid(saved(**batch).logits[:, 0]).numpy()
    # fp32 sums depend on the batch's padded shape (the run scored length-sorted batches): up to about 1e-5 apart
    # on AVX512 CPUs, against a spread of about 1e-2 between records
    np.testing.assert_allclose(probabilities, valid["probability"], rtol=0, atol=1e-4)
    assert np.ptp(valid["probability"]) > 20 * 1e-4
