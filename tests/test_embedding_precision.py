"""Embedding precision, each path forced so that every one runs on any CPU: fp32 and bf16 vectors agree, 'auto'
follows the CPU's bf16 units, the cache is keyed on the precision that ran, outputs keep the input order, and the
progress bar is off where asked (and where stderr is not a TTY)."""

import numpy as np
import pandas as pd
import pytest

from screening.active.rankers import RankerArguments, build_ranker
from screening.errors import ScreeningInputError
from screening.pipelines import features
from screening.pipelines.features import FeatureArguments, cached_embeddings, embed, load_encoder
from screening.text import TextOptions

from .conftest import DEMO_TRAIN


@pytest.fixture(scope="module")
def texts():
    frame = pd.read_csv(DEMO_TRAIN, dtype=str, keep_default_na=False).head(24)
    words = (frame.title + " [SEP] " + frame.abstract).str.split()
    return [" ".join(w[: 3 + (i * 11) % 60]) for i, w in enumerate(words)]  # 3 to 62 words: several lengths


@pytest.fixture
def ran(monkeypatch):
    """The `bf16` of every `embed` call that cached_embeddings makes."""
    calls = []

    def spy(*args, bf16=False, **kwargs):
        calls.append(bf16)
        return embed(*args, bf16=bf16, **kwargs)

    monkeypatch.setattr(features, "embed", spy)
    return calls


def cosines(a, b):
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_bf16_vectors_are_close_to_fp32_and_in_input_order(tiny_encoder_dir, texts):
    encoder, tokenizer = load_encoder(tiny_encoder_dir)
    fp32 = embed(encoder, tokenizer, texts, TextOptions(), max_length=64, batch_size=5)
    bf16 = embed(encoder, tokenizer, texts, TextOptions(), max_length=64, batch_size=5, bf16=True)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (len(texts), 32)
    assert cosines(bf16, fp32).min() > 0.99 and not np.array_equal(bf16, fp32)  # bf16 did run
    one_by_one = np.vstack([embed(encoder, tokenizer, [t], TextOptions(), max_length=64) for t in texts[:6]])
    np.testing.assert_allclose(fp32[:6], one_by_one, atol=1e-5)  # sorted into batches, returned in input order


@pytest.mark.parametrize(("precision", "cpu_has_bf16", "expected"), [
    ("fp32", True, False), ("bf16", False, True), ("auto", True, True), ("auto", False, False)])  # fmt: skip
def test_each_precision_path(tiny_encoder_dir, texts, monkeypatch, ran, precision, cpu_has_bf16, expected):
    monkeypatch.setattr(features, "fast_bf16_available", lambda device: cpu_has_bf16)
    args = FeatureArguments(str(tiny_encoder_dir), max_seq_length=64, precision=precision, disable_tqdm=True)
    assert cached_embeddings(args, texts, TextOptions()).shape == (len(texts), 32)
    assert ran == [expected]


def test_cache_is_keyed_on_the_precision_that_ran(tiny_encoder_dir, texts, monkeypatch, ran, tmp_path):
    monkeypatch.setattr(features, "fast_bf16_available", lambda device: True)

    def run(precision):
        args = FeatureArguments(str(tiny_encoder_dir), max_seq_length=64, precision=precision,
                                feature_cache_dir=str(tmp_path))  # fmt: skip
        return cached_embeddings(args, texts, TextOptions())

    fp32 = run("fp32")
    bf16 = run("bf16")  # not the fp32 entry
    assert ran == [False, True] and len(list(tmp_path.glob("*.npy"))) == 2 and not np.array_equal(fp32, bf16)
    np.testing.assert_array_equal(run("auto"), bf16)  # auto ran bf16 here: the bf16 entry
    np.testing.assert_array_equal(run("fp32"), fp32)
    assert ran == [False, True] and len(list(tmp_path.glob("*.npy"))) == 2


def test_progress_bar_is_off_where_asked_and_without_a_tty(tiny_encoder_dir, texts, monkeypatch, capsys):
    shown = []
    real_tqdm = features.tqdm
    monkeypatch.setattr(features, "tqdm", lambda *a, **k: shown.append(k["disable"]) or real_tqdm(*a, **k))
    for disable_tqdm in (True, False):
        args = FeatureArguments(str(tiny_encoder_dir), max_seq_length=64, disable_tqdm=disable_tqdm)
        cached_embeddings(args, texts, TextOptions())
    assert shown == [True, None]  # None: tqdm shows the bar only where stderr is a TTY
    assert "records/s" not in capsys.readouterr().err  # under pytest stderr is no TTY


def test_bf16_flag_still_means_bf16():
    assert FeatureArguments("m", bf16=True).precision == "bf16" and FeatureArguments("m").precision == "auto"
    with pytest.raises(ScreeningInputError, match="--bf16 and --precision fp32"):
        FeatureArguments("m", bf16=True, precision="fp32")


def test_ranker_embedding_precision_reaches_the_encoder(tiny_encoder_dir, monkeypatch, ran):
    monkeypatch.setattr(features, "fast_bf16_available", lambda device: False)
    frame = pd.read_csv(DEMO_TRAIN, dtype=str, keep_default_na=False).head(10)
    for precision in ("bf16", "auto"):
        args = RankerArguments(ranker="features_lr", model_name_or_path=str(tiny_encoder_dir), max_seq_length=32,
                               embedding_precision=precision)  # fmt: skip
        assert build_ranker(frame, args).features.shape == (10, 32)
    assert ran == [True, False]
