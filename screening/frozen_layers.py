"""The partly frozen fine-tune (`--freeze_layers N`): the output of the frozen embeddings and lowest N encoder
layers is computed once per record and cached, so that each epoch runs only the layers above them and the head.

The cache lives in `<cache_dir>/lower_states/<model key>/`: one folder per frozen model (a digest of the frozen
weights and N, so another checkpoint or another N never reads it), holding shards of (record key, states).
A record's key is a digest of its token ids, so any change of the texts, the text options, the tokenizer or
the max length gives new keys and new states. A record is computed once, whichever fold or split asks first.
"""

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

COLUMN = "lower_states"
SHARD_RECORDS = 256


def model_key(model):
    """A digest of what the frozen layers compute: their count and the weights of the embeddings and those layers."""
    from modeling.modeling_screening import encoder_layers

    frozen = model.config.frozen_layers
    digest = hashlib.sha256(f"frozen_layers={frozen};{type(model.encoder).__name__}".encode())
    for module in (model.encoder.embeddings, *encoder_layers(model.encoder)[:frozen]):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def record_keys(dataset):
    """One digest per tokenized record: its input ids (and token type ids, where there are any)."""
    columns = [c for c in ("input_ids", "token_type_ids") if c in dataset.column_names]
    rows = zip(*(dataset[c] for c in columns))
    return [hashlib.sha1(b"|".join(np.asarray(r, np.int64).tobytes() for r in row)).hexdigest() for row in rows]


@torch.inference_mode()
def compute_states(model, dataset, rows, batch_size=32):
    """Yield (row, states) for `rows` of a tokenized dataset: each record's lower-layer output over its real
    tokens, float32, computed in eval mode in length-sorted batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = dataset["input_ids"]
    types = dataset["token_type_ids"] if "token_type_ids" in dataset.column_names else None
    order = sorted(rows, key=lambda r: -len(ids[r]))
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="Frozen layers", unit="batch"):
            batch = order[start : start + batch_size]
            width = max(len(ids[r]) for r in batch)
            tensors = {name: torch.zeros((len(batch), width), dtype=torch.long) for name in ("ids", "mask", "types")}
            for i, r in enumerate(batch):
                tensors["ids"][i, : len(ids[r])] = torch.as_tensor(ids[r])
                tensors["mask"][i, : len(ids[r])] = 1
                if types is not None:
                    tensors["types"][i, : len(ids[r])] = torch.as_tensor(types[r])
            token_types = tensors["types"].to(device) if types is not None else None
            states = model.lower_layer_states(tensors["ids"].to(device), tensors["mask"].to(device), token_types)
            states = states.float().cpu().numpy()
            for i, r in enumerate(batch):
                yield r, states[i, : len(ids[r])]
    finally:
        model.train(was_training)


def _shard(keys, states, hidden):
    features = datasets.Features(
        {"key": datasets.Value("string"), COLUMN: datasets.Array2D(shape=(None, hidden), dtype="float32")}
    )
    return datasets.Dataset.from_dict({"key": keys, COLUMN: states}, features=features)


def _save(shard, folder):
    """Save a shard under `folder` atomically (a half-written shard is never read)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".shard.", dir=folder)
    target = folder / f"shard-{uuid.uuid4().hex}"
    try:
        shard.save_to_disk(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(target))


def load_shards(folder):
    if folder is None or not folder.is_dir():
        return []
    return [datasets.load_from_disk(str(p)) for p in sorted(folder.glob("shard-*")) if (p / "state.json").exists()]


def attach_lower_states(splits, model, cache_dir=None, batch_size=32):
    """Each tokenized dataset of `splits` (None stays None) with a `lower_states` column holding, per record, its
    row in the returned store: a dataset of every record's frozen-layer output (column `lower_states`). States
    cached in `cache_dir` before are read, the others computed now (and cached when `cache_dir` is given).
    Returns (datasets, store); `LowerStatesCollator(collator, store)` turns the rows into padded states."""
    folder = Path(cache_dir) / COLUMN / model_key(model) if cache_dir is not None else None
    shards = load_shards(folder)
    hidden = model.config.encoder_config.hidden_size
    for dataset in (d for d in splits if d is not None):
        known = {k for s in shards for k in s["key"]}
        keys = record_keys(dataset)
        missing = list({k: r for r, k in enumerate(keys) if k not in known}.values())
        if not missing:
            continue
        logger.info(f"Frozen layers: computing their output for {len(missing)} records (cache: {folder})")
        pending_keys, pending_states = [], []
        for done, (row, states) in enumerate(compute_states(model, dataset, missing, batch_size), 1):
            pending_keys.append(keys[row])
            pending_states.append(states)
            if len(pending_keys) == SHARD_RECORDS or done == len(missing):
                shard = _shard(pending_keys, pending_states, hidden)
                shards.append(_save(shard, folder) if folder is not None else shard)
                pending_keys, pending_states = [], []
    store = datasets.concatenate_datasets(shards) if shards else None
    index = {k: i for i, k in enumerate(store["key"])} if store is not None else {}
    attached = [None if d is None else d.add_column(COLUMN, [index[k] for k in record_keys(d)]) for d in splits]
    return attached, None if store is None else store.select_columns([COLUMN]).with_format("numpy")


@dataclass
class LowerStatesCollator:
    """Wraps a padding collator: replaces each record's `lower_states` row (in `store`) with its frozen-layer
    output, zero-padded to the batch's padded length (right padding), beside what the wrapped collator pads."""

    collator: object
    store: object

    def __call__(self, features):
        rows = [int(f.pop(COLUMN)) for f in features]
        batch = self.collator(features)
        states = self.store[rows][COLUMN]
        width = batch["input_ids"].shape[1]
        padded = torch.zeros((len(rows), width, states[0].shape[-1]), dtype=torch.float32)
        for i, s in enumerate(states):
            padded[i, : len(s)] = torch.from_numpy(np.asarray(s, dtype=np.float32))
        batch[COLUMN] = padded
        return batch
