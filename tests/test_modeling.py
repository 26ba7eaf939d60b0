import json
import os
import shutil
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, BertForMaskedLM, BertModel

from modeling import HEADS, ScreeningConfig, ScreeningForSequenceClassification

from .cli_runner import run_command
from .conftest import tiny_encoder_config


@pytest.mark.parametrize("head_type", sorted(HEADS))
def test_head_output_shape(tester, head_type):
    model = tester.model(head_type)
    with torch.no_grad():
        out = model(**tester.inputs())
    assert out.logits.shape == (tester.batch_size, 1)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


@pytest.mark.parametrize("head_type", sorted(HEADS))
def test_loss_falls_on_toy_batch(tester, head_type):
    model = tester.model(head_type).train()
    batch = tester.inputs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(**batch).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("head_type", sorted(HEADS))
def test_save_load_round_trip(tester, head_type, tmp_path):
    model = tester.model(head_type, threshold=0.123)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, ScreeningForSequenceClassification)
    assert loaded.config.head_type == head_type and loaded.config.threshold == 0.123
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    batch = tester.inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=1e-6)


def test_padding_does_not_change_logits(tester):
    """Pooling heads ignore padded positions: a row padded further gives the same logit."""
    for head_type in ("mean", "max", "attention", "bilstm"):
        model = tester.model(head_type)
        ids = torch.randint(5, len(tester.vocab), (1, 6))
        padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
        mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)], 1)
        with torch.no_grad():
            a = model(input_ids=ids).logits
            b = model(input_ids=padded, attention_mask=mask).logits
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=head_type)


def test_registration_with_auto_classes(tester):
    config = tester.config("mean")
    assert isinstance(AutoConfig.for_model("screening", head_type="max"), ScreeningConfig)
    assert type(AutoModel.from_config(config)) is ScreeningForSequenceClassification
    assert type(AutoModelForSequenceClassification.from_config(config)) is ScreeningForSequenceClassification


def test_saved_config_has_auto_map_and_code(tester, tmp_path):
    tester.model("cnn").save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "screening"
    assert (
        saved["auto_map"]["AutoModelForSequenceClassification"]
        == "modeling_screening.ScreeningForSequenceClassification"
    )
    assert saved["auto_map"]["AutoConfig"] == "configuration_screening.ScreeningConfig"
    for name in ("modeling_screening.py", "configuration_screening.py", "heads.py", "losses.py"):
        assert (tmp_path / name).exists(), name


def test_trust_remote_code_in_fresh_process(tester, tmp_path):
    """A copy of the saved folder loads in a Python that has never seen this repo."""
    model = tester.model("attention", threshold=0.3)
    model.save_pretrained(tmp_path / "saved")
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(tmp_path / "saved", copy)
    batch = tester.inputs()
    torch.save({k: batch[k] for k in ("input_ids", "attention_mask")}, tmp_path / "batch.pt")
    with torch.no_grad():
        torch.save(model(**batch).logits, tmp_path / "expected.pt")
    script = f"""
import sys, torch
assert not any('modeling' in m for m in sys.modules)
from transformers import AutoModelForSequenceClassification
m = AutoModelForSequenceClassification.from_pretrained({str(copy)!r}, trust_remote_code=True).eval()
assert type(m).__module__.startswith('transformers_modules'), type(m).__module__
b = torch.load({str(tmp_path / "batch.pt")!r})
with torch.no_grad(): logits = m(**b).logits
torch.testing.assert_close(logits, torch.load({str(tmp_path / "expected.pt")!r}), rtol=0, atol=1e-6)
assert m.config.threshold == 0.3
print('ok')
"""
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    result = run_command([sys.executable, "-c", script], cwd=tmp_path / "elsewhere", env=env)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


@pytest.mark.parametrize("encoder_class", [BertModel, BertForMaskedLM])
def test_from_encoder_checkpoint_loads_encoder_weights(tester, tmp_path, encoder_class, caplog):
    """A plain or `bert.`-prefixed (masked-LM) encoder checkpoint gives its weights; the head is new."""
    torch.manual_seed(1)
    source = encoder_class(tiny_encoder_config(len(tester.vocab)))
    source.save_pretrained(tmp_path)
    encoder = source if encoder_class is BertModel else source.bert
    model = ScreeningForSequenceClassification.from_pretrained(tmp_path, head_type="mean", threshold=0.2)
    assert model.config.head_type == "mean" and model.config.threshold == 0.2
    expected = encoder.state_dict()
    for name, value in model.encoder.state_dict().items():
        if name.startswith("pooler") and encoder_class is BertForMaskedLM:
            continue  # a masked-LM checkpoint has no pooler
        assert torch.equal(value, expected[name]), name
    assert model.head.classifier.weight.abs().max() < 0.2  # initialised by _init_weights (std 0.02)


def test_resize_token_embeddings_through_wrapper(tester, tmp_path):
    model = tester.model("cls")
    model.resize_token_embeddings(len(tester.vocab) + 3)
    assert model.config.encoder_config.vocab_size == len(tester.vocab) + 3
    model.save_pretrained(tmp_path)
    loaded = ScreeningForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.get_input_embeddings().weight.shape[0] == len(tester.vocab) + 3


def test_unknown_head_is_rejected(tester):
    with pytest.raises(ValueError, match="head_type must be one of"):
        ScreeningForSequenceClassification(tester.config("nope"))


def test_predict_labels_uses_threshold(tester):
    model = tester.model("cls", threshold=0.4)
    assert model.predict_labels([0.39, 0.4, 0.9]).tolist() == [0, 1, 1]


def attention_dropouts(model):
    """The dropout probability each BERT self-attention layer applies to its attention probabilities."""
    return [layer.attention.self.dropout.p for layer in model.encoder.encoder.layer]


def test_attention_dropout_override_on_encoder_and_saved_model(tester, tmp_path):
    """`attention_dropout` replaces the encoder's value whether it loads a plain encoder or a saved model;
    without it the checkpoint's value is kept, and the override is saved with the model."""
    BertModel(tiny_encoder_config(len(tester.vocab), attention_probs_dropout_prob=0.1)).save_pretrained(
        tmp_path / "encoder"
    )
    kept = ScreeningForSequenceClassification.from_pretrained(tmp_path / "encoder")
    assert set(attention_dropouts(kept)) == {0.1}
    model = ScreeningForSequenceClassification.from_pretrained(
        tmp_path / "encoder", attention_dropout=0.0, head_type="mean"
    )
    assert set(attention_dropouts(model)) == {0.0} and model.config.head_type == "mean"
    assert model.config.encoder_config.attention_probs_dropout_prob == 0.0
    model.save_pretrained(tmp_path / "saved")
    again = ScreeningForSequenceClassification.from_pretrained(
        tmp_path / "saved", attention_dropout=0.25, threshold=0.3, attn_implementation="eager", local_files_only=True
    )
    assert set(attention_dropouts(again)) == {0.25} and again.config.head_type == "mean"
    assert again.config.threshold == 0.3 and again.config._attn_implementation == "eager"
    for name, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    assert set(attention_dropouts(ScreeningForSequenceClassification.from_pretrained(tmp_path / "saved"))) == {0.0}


def test_attention_dropout_zero_trains_like_eval_attention(tester):
    """With attention dropout 0 (and no other dropout) a training-mode forward equals the eval one:
    the override reaches the attention kernel."""
    config = tester.config("cls")
    config.encoder_config.attention_probs_dropout_prob = 0.5
    torch.manual_seed(0)
    model = ScreeningForSequenceClassification(config)
    inputs = tester.inputs()
    model.train()
    assert not torch.allclose(model(**inputs).logits, model.eval()(**inputs).logits)  # attention dropout on
    from modeling.modeling_screening import set_attention_dropout

    set_attention_dropout(config.encoder_config, 0.0)
    torch.manual_seed(0)
    model = ScreeningForSequenceClassification(config)
    model.train()
    torch.testing.assert_close(model(**inputs).logits, model.eval()(**inputs).logits)


def test_attention_dropout_rejects_bad_values(tester):
    from modeling.modeling_screening import set_attention_dropout

    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        set_attention_dropout(tiny_encoder_config(10), 1.0)
    with pytest.raises(ValueError, match="has no attention dropout field"):
        set_attention_dropout(AutoConfig.for_model("gpt2"), 0.0)
