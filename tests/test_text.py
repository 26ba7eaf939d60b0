"""Text options: cleaning, synonym map, separator special token, head+tail truncation, saved options."""

import json

import pandas as pd
import pytest

from screening.errors import ScreeningInputError
from screening.text import (
    TextArguments,
    TextOptions,
    clean_texts,
    load_text_options,
    prepare_texts,
    resolve_text_options,
    save_text_options,
)
from screening.tokenization import add_separator_token, encode


def test_cleaning_options_one_by_one():
    text = "COVID-19 and SARS-CoV-2 by RT-PCR in 2020: the Covid cohort"
    synonyms = TextOptions(synonyms={"covid-19": "coronavirus", "sars-cov-2": "coronavirus", "rt-pcr": "pcr"})
    assert clean_texts([text], synonyms) == ["coronavirus and coronavirus by pcr in 2020: the Covid cohort"]
    assert clean_texts([text], TextOptions(lowercase=True)) == [text.lower()]
    assert clean_texts([text], TextOptions(remove_digits=True)) == [
        "COVID- and SARS-CoV- by RT-PCR in : the Covid cohort"
    ]
    assert clean_texts(["the study of a cohort"], TextOptions(remove_stopwords=True)) == ["study cohort"]
    assert clean_texts([text], TextOptions()) == [text]


def test_default_synonyms_and_resolution_from_flags():
    options = resolve_text_options(TextArguments(lowercase=True, synonyms="default"))
    assert clean_texts(["Covid19 RT-qPCR"], options) == ["coronavirus pcr"]
    with pytest.raises(ScreeningInputError, match="--synonyms"):
        resolve_text_options(TextArguments(synonyms="/no/such/file.json"))
    with pytest.raises(ScreeningInputError, match="--truncation"):
        resolve_text_options(TextArguments(truncation="middle"))


def test_separator_is_never_cleaned():
    frame = pd.DataFrame({"title": ["The Title 1"], "abstract": ["An Abstract"]})
    options = TextOptions(lowercase=True, remove_digits=True, separator_token="[TASEP]")
    assert prepare_texts(frame, ["title", "abstract"], "[SEP]", options) == ["the title [TASEP] an abstract"]


def test_head_tail_truncation(tester):
    tokenizer = tester.tokenizer()
    words = "the of and in to a with for was were".split()
    text = " ".join(words)
    head = encode(tokenizer, [text], 6, TextOptions())["input_ids"][0]
    assert tokenizer.convert_ids_to_tokens(head) == ["[CLS]", "the", "of", "and", "in", "[SEP]"]
    both = encode(tokenizer, [text, "the"], 6, TextOptions(truncation="head_tail", head_tokens=1))
    first_and_last = ["[CLS]", "the", "for", "was", "were", "[SEP]"]  # 1 head token + the last 3
    assert tokenizer.convert_ids_to_tokens(both["input_ids"][0]) == first_and_last
    assert both["input_ids"][1] == tokenizer("the")["input_ids"]  # short texts are untouched
    assert both["attention_mask"][0] == [1] * 6


def test_separator_token_resizes_embeddings_and_is_saved(tester, tmp_path):
    tokenizer, model = tester.tokenizer(), tester.model()
    before = model.get_input_embeddings().weight.shape[0]
    add_separator_token(tokenizer, model, TextOptions(separator_token="[TASEP]"))
    assert model.get_input_embeddings().weight.shape[0] == before + 1 == len(tokenizer)
    assert tokenizer.tokenize("a [TASEP] b") == ["a", "[TASEP]", "b"]
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    save_text_options(tmp_path, TextOptions(lowercase=True, separator_token="[TASEP]"))
    assert json.loads((tmp_path / "config.json").read_text())["encoder_config"]["vocab_size"] == before + 1
    # a loaded model gets its saved options back; flags add to them
    options = resolve_text_options(TextArguments(remove_digits=True), tmp_path)
    assert options == TextOptions(lowercase=True, remove_digits=True, separator_token="[TASEP]")
    assert load_text_options(tmp_path / "missing") is None
