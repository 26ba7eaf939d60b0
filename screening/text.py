"""A record's model text: light cleaning of every record (HTML markup, whitespace), the text columns joined by a
separator, and the competition seed's text options: cleaning (lower-casing, a synonym map, digit and stop-word
removal), a title/abstract separator added as a special token, and head+tail truncation.

The options a model was trained with are saved beside it (`text_options.json`) and read back when the
model is loaded again, so that prediction builds its inputs exactly as training did.
"""

import html
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from . import outputs
from .errors import ScreeningInputError

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
    outputs.write_json(Path(out_dir) / TEXT_OPTIONS_NAME, asdict(options))


def resolve_text_options(text_args, model_dir=None):
    """Flags given on the command line, over the options saved with the model in `model_dir`, over the defaults."""
    options = asdict(load_text_options(model_dir) or TextOptions()) if model_dir else asdict(TextOptions())
    for f in fields(TextArguments):
        value = getattr(text_args, f.name)
        if value is not None and value is not False:
            options[f.name] = read_synonyms(value) if f.name == "synonyms" else value
    return TextOptions(**options).check()


_WS = re.compile(r"\s+")
# Only the tags of bibliographic markup (PubMed/JATS/publisher HTML), with name="value" attributes at most,
# so that text such as "P < 0.05 and n > 3" or "a<b and c>d" stays.
_ATTRS = r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))*\s*/?>"""
_INLINE = "a|abbr|b|bold|em|i|inf|italic|sc|small|span|strong|sub|sup|tt|u|underline"
_BLOCK = "br|dd|div|dl|dt|h[1-6]|hr|li|ol|p|table|tbody|td|th|tr|ul"
_INLINE_TAG = re.compile(f"</?(?:{_INLINE}){_ATTRS}", re.IGNORECASE)
_BLOCK_TAG = re.compile(f"</?(?:{_BLOCK}){_ATTRS}", re.IGNORECASE)


def normalize_text(text):
    """Light cleaning applied to every record the same way in training and prediction: the HTML tags of
    bibliographic markup removed (inline ones such as `<sup>` without a trace, block ones such as `<p>`
    leaving a space), HTML entities unescaped (`&lt;` -> `<`), whitespace runs (newlines included)
    collapsed to one space. Other `<`/`>` (`P < 0.05`) are text and stay."""
    if "<" in text or "&" in text:
        text = html.unescape(_INLINE_TAG.sub("", _BLOCK_TAG.sub(" ", text)))
    return _WS.sub(" ", text).strip()


def build_texts(frame, text_columns, separator):
    """One text per record: the text columns, each cleaned by `normalize_text`, joined by ` {separator} `
    (empty parts kept, so every record has the same layout)."""
    parts = [frame[c].astype(str).map(normalize_text) for c in text_columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + f" {separator} " + part
    return joined.str.strip().tolist()


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
