"""Text handling options of the competition seed: cleaning (lower-casing, a synonym map, digit and stop-word
removal), a title/abstract separator added as a special token, and head+tail truncation.

The options a model was trained with are saved beside it (`text_options.json`) and read back when the
model is loaded again, so that prediction builds its inputs exactly as training did.
"""

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from . import io
from .data import ScreeningInputError, build_texts

TEXT_OPTIONS_NAME = "text_options.json"
TRUNCATIONS = ("head", "head_tail")

# The seed's synonym map: spellings of one concept become one word (matched case-insensitively, whole words).
DEFAULT_SYNONYMS = {
    "sars-cov-2": "coronavirus",
    "sars-cov2": "coronavirus",
    "2019-ncov": "coronavirus",
    "covid-19": "coronavirus",
    "covid19": "coronavirus",
    "covid": "coronavirus",
    "rt-pcr": "pcr",
    "rt-qpcr": "pcr",
    "qpcr": "pcr",
}


@dataclass
class TextArguments:
    """How a record's text is cleaned, joined and truncated. A model saved by run_classification.py keeps its
    options (text_options.json) and they apply when it is loaded again; flags given here add to them."""

    lowercase: bool = field(default=False, metadata={"help": "Lower-case the text."})
    synonyms: str | None = field(
        default=None,
        metadata={
            "help": "Replace synonyms: 'default' (covid/sars-cov-2 -> coronavirus, rt-pcr -> pcr, ...) or a JSON "
            "file {word: replacement}; 'none' turns a saved map off."
        },
    )
    remove_digits: bool = field(default=False, metadata={"help": "Delete digits."})
    remove_stopwords: bool = field(default=False, metadata={"help": "Delete English stop words (sklearn's)."})
    separator_token: str | None = field(
        default=None,
        metadata={
            "help": "Join title and abstract with this new special token (e.g. '[TASEP]'): it is added to the "
            "tokenizer, the embeddings are resized, and both are saved with the model."
        },
    )
    truncation: str | None = field(
        default=None,
        metadata={"help": "'head' (keep the first tokens, default) or 'head_tail' (the first and the last tokens)."},
    )
    head_tokens: int | None = field(
        default=None,
        metadata={"help": "With head_tail: tokens kept from the start (default: a quarter of the length)."},
    )


@dataclass
class TextOptions:
    """Resolved text options, as saved in `text_options.json`."""

    lowercase: bool = False
    synonyms: dict | None = None
    remove_digits: bool = False
    remove_stopwords: bool = False
    separator_token: str | None = None
    truncation: str = "head"
    head_tokens: int | None = None

    def check(self):
        if self.truncation not in TRUNCATIONS:
            raise ScreeningInputError(f"--truncation must be one of {', '.join(TRUNCATIONS)}; got {self.truncation!r}")
        if self.head_tokens is not None and self.head_tokens < 0:
            raise ScreeningInputError(f"--head_tokens must be >= 0; got {self.head_tokens}")
        return self

    @property
    def cleans(self):
        return self.lowercase or bool(self.synonyms) or self.remove_digits or self.remove_stopwords


def read_synonyms(value):
    if value is None or value == "none":
        return None
    if value == "default":
        return dict(DEFAULT_SYNONYMS)
    path = Path(value)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScreeningInputError(f"--synonyms: file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ScreeningInputError(f"--synonyms: {path} is not JSON: {err.msg} (line {err.lineno})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ScreeningInputError(f"--synonyms: {path} must hold one JSON object of word -> replacement strings")
    return mapping


def load_text_options(model_dir):
    """The options saved beside a model, or None."""
    path = Path(str(model_dir)) / TEXT_OPTIONS_NAME
    return TextOptions(**json.loads(path.read_text())) if path.is_file() else None


def save_text_options(out_dir, options):
    io.write_json(Path(out_dir) / TEXT_OPTIONS_NAME, asdict(options))


def resolve_text_options(text_args, model_dir=None):
    """Flags given on the command line, over the options saved with the model in `model_dir`, over the defaults."""
    options = asdict(load_text_options(model_dir) or TextOptions()) if model_dir else asdict(TextOptions())
    for f in fields(TextArguments):
        value = getattr(text_args, f.name)
        if value is not None and value is not False:
            options[f.name] = read_synonyms(value) if f.name == "synonyms" else value
    return TextOptions(**options).check()


_STOP = re.compile(
    r"\b(?:" + "|".join(sorted(map(re.escape, ENGLISH_STOP_WORDS), key=len, reverse=True)) + r")\b", re.I
)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def _synonym_pattern(synonyms):
    words = sorted(synonyms, key=len, reverse=True)  # longest first: 'covid-19' before 'covid'
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.I)


def clean_texts(texts, options):
    """Apply the cleaning options, in the seed's order: synonyms, lower-case, digits, stop words."""
    if not options.cleans:
        return list(texts)
    lookup = {k.lower(): v for k, v in (options.synonyms or {}).items()}
    pattern = _synonym_pattern(lookup) if lookup else None
    cleaned = []
    for text in texts:
        if pattern is not None:
            text = pattern.sub(lambda m: lookup[m.group(0).lower()], text)
        if options.lowercase:
            text = text.lower()
        if options.remove_digits:
            text = _DIGITS.sub("", text)
        if options.remove_stopwords:
            text = _STOP.sub("", text)
        cleaned.append(_SPACES.sub(" ", text).strip())
    return cleaned


def prepare_texts(frame, text_columns, separator, options):
    """One text per record: each column cleaned, then joined by the separator (which is never cleaned)."""
    frame = frame.copy()
    for column in text_columns:
        frame[column] = clean_texts(frame[column].astype(str).tolist(), options)
    return build_texts(frame, text_columns, options.separator_token or separator)


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
