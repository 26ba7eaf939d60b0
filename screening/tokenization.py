"""Tokenization: head or head+tail truncation, the added separator token, and datasets tokenized once and
cached on disk (keyed on the texts, labels, tokenizer and settings)."""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import numpy as np

from .text import TextOptions, prepare_texts

CACHE_VERSION = 2


def add_separator_token(tokenizer, model, options):
    """Add `options.separator_token` as a special token and grow the model's embeddings to match."""
    if not options.separator_token:
        return
    tokenizer.add_special_tokens({"additional_special_tokens": [options.separator_token]})
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))


def _special_tokens_around(tokenizer):
    """The ids a tokenizer puts before and after one sequence (e.g. [CLS] ... [SEP], <s> ... </s>)."""
    probe = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    at = next(i for i in range(len(full)) if full[i : i + len(probe)] == probe)
    return full[:at], full[at + len(probe) :]


def encode(tokenizer, texts, max_length, options, padding=False):
    """Tokenize `texts` to at most `max_length` tokens: the head, or the first `head_tokens` plus the last tokens."""
    if options.truncation == "head":
        return tokenizer(texts, padding=padding, truncation=True, max_length=max_length)
    prefix, suffix = _special_tokens_around(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    head = budget // 4 if options.head_tokens is None else min(options.head_tokens, budget)
    tail = budget - head
    rows = []
    for ids in tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]:
        if len(ids) > budget:
            ids = ids[:head] + (ids[len(ids) - tail :] if tail else [])
        rows.append(prefix + ids + suffix)
    batch = {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]}
    if "token_type_ids" in tokenizer.model_input_names:
        batch["token_type_ids"] = [[0] * len(r) for r in rows]
    if padding:
        batch = tokenizer.pad(batch, padding=padding, max_length=max_length)
    return batch


def default_cache_dir():
    return Path(datasets.config.HF_DATASETS_CACHE) / "screening_tokenized"


def cache_key(texts, labels, tokenizer, max_length, padding, options=None):
    """A digest of everything the tokenized dataset depends on."""
    options = options or TextOptions()
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.float32).tobytes())
    settings = {"max_length": max_length, "padding": padding, "version": CACHE_VERSION}
    settings.update(truncation=options.truncation, head_tokens=options.head_tokens)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    return digest.hexdigest()[:32]


def tokenizer_fingerprint(tokenizer):
    """What decides a tokenizer's output: its class, vocabulary and rules, special tokens and sides. Not a
    pickle hash, which changes once a fast tokenizer has been called (it keeps its last truncation state)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = sorted(tokenizer.get_vocab().items())
    settings = [tokenizer.special_tokens_map, tokenizer.model_input_names, tokenizer.padding_side]
    return json.dumps([type(tokenizer).__name__, state, settings, tokenizer.truncation_side], default=str)


def tokenize_texts(
    texts, labels, tokenizer, max_length, padding=False, cache_dir=None, num_proc=None, desc=None, options=None
):
    """A `datasets.Dataset` with `input_ids`, `attention_mask` (and `token_type_ids` where the tokenizer
    makes them), `length` (real tokens) and, when given, float `labels`. `options` (TextOptions) chooses the
    truncation: the head (default) or head + tail.

    With `cache_dir`, a dataset tokenized before from the same texts, labels, tokenizer and settings is
    loaded from `cache_dir/<key>` instead (memory-mapped); a new one is saved there atomically.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / cache_key(texts, labels, tokenizer, max_length, padding, options)
        if (path / "dataset_info.json").exists():
            return datasets.load_from_disk(str(path))
    table = {"text": list(texts)}
    if labels is not None:
        table["labels"] = np.asarray(labels, dtype=np.float32)
    dataset = datasets.Dataset.from_dict(table)

    def encode_batch(batch):
        encoded = dict(encode(tokenizer, batch["text"], max_length, options or TextOptions(), padding=padding))
        encoded["length"] = [int(sum(mask)) for mask in encoded["attention_mask"]]  # real tokens, not padding
        return encoded

    dataset = dataset.map(encode_batch, batched=True, remove_columns=["text"], num_proc=num_proc, desc=desc)
    if path is None:
        return dataset
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        dataset.save_to_disk(tmp)
        os.replace(tmp, path)  # atomic; fails if another process saved the same key first
    except OSError:
        if not (path / "dataset_info.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path))


def tokenize_frame(frame, tokenizer, text_columns, max_length, options=None, separator=None, **kwargs):
    """`tokenize_texts` of a screening table: each record's text built by `screening.text.prepare_texts`
    (joined by `separator`, default the tokenizer's sep token), its `labels` column as float labels when it has
    one. `kwargs` go to `tokenize_texts` (padding, cache_dir, num_proc, desc)."""
    options = options or TextOptions()
    texts = prepare_texts(frame, text_columns, separator or tokenizer.sep_token or "|", options)
    labels = frame["labels"].astype(np.float32).to_numpy() if "labels" in frame else None
    return tokenize_texts(texts, labels, tokenizer, max_length, options=options, **kwargs)
