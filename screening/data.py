"""Loading and checking screening tables (CSV, TSV, JSON lines, Excel or RIS files, or a dataset read by
`datasets.load_dataset`): columns, ids, 0/1 labels, both classes."""

import difflib
import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ScreeningInputError

LABEL_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}
"""Accepted label spellings. "0.0"/"1.0" are accepted because spreadsheets and pandas write integer
columns with a missing value as floats; everything else ("yes", 2, "", "nan", "true") is an error."""


def _rows(index, limit=10):
    """Row numbers for messages, one convention everywhere: 1-based data rows, the header not counted (row 1
    is the first record after a CSV's header, or a JSON-lines file's first line)."""
    rows = [int(i) + 1 for i in index[:limit]]
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"rows {', '.join(map(str, rows))}{more} (1-based, header not counted)"


def _decode_utf8(path, flag):
    """The file's text; a one-line error naming the line and byte if it is not UTF-8 (a BOM is dropped)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ScreeningInputError(
            f"{flag}: {path} is not UTF-8 text (line {line}, byte {err.start}: {raw[err.start : err.start + 1]!r}); "
            "re-save it as UTF-8"
        ) from None


TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".json", ".jsonl", ".xlsx", ".ris", ".txt")


def read_table(path, flag="--train_file"):
    """Read CSV (`.csv`), TSV (`.tsv`, `.tab`), JSON lines (`.json`, `.jsonl`), Excel (`.xlsx`, first sheet) or
    RIS (`.ris`, `.txt`; see `read_ris`) with every column as text; empty stays ''."""
    path = Path(path)
    if not path.is_file():
        raise ScreeningInputError(f"{flag}: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ScreeningInputError(f"{flag}: {path}: expected a {', '.join(TABLE_SUFFIXES[:-1])} or .txt (RIS) file")
    if suffix == ".xlsx":
        frame = _read_excel(path, flag)
    else:
        text = _decode_utf8(path, flag)
        if not text.strip():
            raise ScreeningInputError(f"{flag}: {path} is empty")
        try:
            if suffix in (".ris", ".txt"):
                frame = read_ris(text, path, flag)
            elif suffix in (".csv", ".tsv", ".tab"):
                sep = "," if suffix == ".csv" else "\t"
                frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
            else:
                frame = as_text(pd.read_json(io.StringIO(text), lines=True, dtype=False))
        except (pd.errors.ParserError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ScreeningInputError(f"{flag}: {path} could not be parsed: {first}") from None
    if frame.empty:
        raise ScreeningInputError(f"{flag}: {path} has a header but no data rows")
    return frame


def as_text(frame):
    """Every value as text, '' where it is missing (a parsed JSON or dataset table, as a CSV is read)."""
    return frame.astype(object).where(frame.notna(), "").astype(str)


def _read_excel(path, flag):
    """The first sheet of an Excel workbook, every cell as text (empty cells and numbers written as integers
    ('12', not '12.0') where they are whole)."""
    try:
        frame = pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
    except Exception as err:  # openpyxl raises many types for a file that is not a workbook
        first = " ".join(str(err).split()) or type(err).__name__
        raise ScreeningInputError(f"{flag}: {path} could not be read as an Excel workbook: {first}") from None

    def cell(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return frame.apply(lambda column: column.map(cell)).astype(str)


RIS_FIELDS = {
    "id": ("id",),
    "title": ("title", "primary_title", "translated_title"),
    "abstract": ("abstract", "notes_abstract"),
    "year": ("year", "publication_year"),
    "journal": ("secondary_title", "journal_name", "alternate_title1"),
    "doi": ("doi",),
}


def read_ris(text, path, flag):
    """A RIS export (rispy) as a table with columns id (the records' ID tag; '' where absent), title, abstract,
    authors ('; '-joined), year, journal and doi."""
    import rispy

    try:
        entries = rispy.loads(text)
    except (OSError, ValueError) as err:  # rispy raises OSError for a malformed file
        raise ScreeningInputError(f"{flag}: {path} is not a RIS file: {' '.join(str(err).split())}") from None

    def first(entry, keys):
        for key in keys:
            value = entry.get(key)
            if value:
                return "; ".join(map(str, value)) if isinstance(value, list) else str(value)
        return ""

    rows = []
    for entry in entries:
        row = {name: first(entry, keys) for name, keys in RIS_FIELDS.items()}
        row["authors"] = "; ".join(entry.get("authors") or entry.get("first_authors") or [])
        rows.append(row)
    return pd.DataFrame(rows, columns=[*RIS_FIELDS, "authors"], dtype=str)


def stable_ids(frame, id_column, text_columns):
    """Each record's id: its `id_column` value where the column exists and the value is not empty, else
    'r' + the first 12 hex digits of the SHA-1 of the record's text columns (joined by a newline, whitespace
    collapsed), with '-2', '-3', ... added to the second and later records of the same text. The same file gives
    the same ids on every run, and they do not change when records are added to or removed from the file."""
    import hashlib

    given = frame[id_column].astype(str).str.strip() if id_column in frame.columns else pd.Series([""] * len(frame))
    texts = frame[list(text_columns)].astype(str).agg("\n".join, axis=1).str.split().str.join(" ")
    hashed = texts.map(lambda t: "r" + hashlib.sha1(t.encode("utf-8")).hexdigest()[:12])
    repeat = hashed.groupby(hashed).cumcount()
    hashed = hashed.where(repeat == 0, hashed + "-" + (repeat + 1).astype(str))
    return given.where(given != "", hashed.to_numpy()).to_numpy()


def check_columns(frame, columns, path, flag, column_flags=None):
    """Every name in `columns` is a column of `frame`; `column_flags` maps a name to the flag that set it."""
    present = [str(c) for c in frame.columns]
    missing = [c for c in columns if c not in present]
    if missing:
        name = missing[0]
        close = difflib.get_close_matches(name.lower(), [c.lower() for c in present], n=1, cutoff=0.6)
        hint = f"; did you mean {present[[c.lower() for c in present].index(close[0])]!r}?" if close else ""
        set_by = f" (set by {column_flags[name]})" if column_flags and name in column_flags else ""
        raise ScreeningInputError(
            f"{flag}: {path} has no column {', '.join(map(repr, missing))}{set_by}; "
            f"columns present: {', '.join(present)}{hint}"
        )


def parse_labels(frame, column, path, flag):
    """0/1 integer labels (see LABEL_VALUES); anything else is an error naming its rows."""
    raw = frame[column].astype(str).str.strip()
    bad = raw[~raw.isin(list(LABEL_VALUES))]
    if len(bad):
        examples = ", ".join(sorted({repr(v) for v in bad.iloc[:20]})[:5])
        raise ScreeningInputError(
            f"{flag}: {path}: column {column!r} must hold 0 or 1; {_rows(bad.index)} hold {examples}"
        )
    return raw.map(LABEL_VALUES).to_numpy(dtype=np.int64)


def check_unique_ids(frame, column, path, flag):
    ids = frame[column].astype(str).str.strip()
    empty = frame.index[ids == ""]
    if len(empty):
        raise ScreeningInputError(f"{flag}: {path}: column {column!r} is empty in {_rows(empty)}")
    duplicated = frame.index[ids.duplicated(keep=False)]
    if len(duplicated):
        raise ScreeningInputError(
            f"{flag}: {path}: column {column!r} has duplicate ids {sorted(set(ids[duplicated]))[:5]} "
            f"in {_rows(duplicated)}"
        )


def check_two_classes(labels, source, flag, what="training data", fix=""):
    """Both labels occur: a model cannot learn, nor a threshold be tuned, from one class. `source` is the file
    (named by `flag`) or `DatasetSplit` the labels came from."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2)
    if counts.min() == 0:
        only = "1 (include)" if counts[0] == 0 else "0 (exclude)"
        raise ScreeningInputError(
            f"{source_flag(source, flag)}: {source}: the {what} holds only label {only}; both 0 and 1 are needed"
            f"{'; ' + fix if fix else ''}"
        )


def sample_negatives(frame, ratio, seed):
    """All positives and `ratio` randomly chosen negatives per positive (all negatives if there are fewer),
    in the frame's original order. Screening data is ~95% negatives: this cuts training time by the same
    factor while every include is still seen (the validation and test data are never sampled)."""
    labels = frame["labels"].to_numpy()
    negatives = np.flatnonzero(labels == 0)
    keep = min(len(negatives), int(round(ratio * int((labels == 1).sum()))))
    chosen = np.random.default_rng(seed).choice(negatives, size=keep, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(labels == 1), chosen]))
    return frame.iloc[rows].reset_index(drop=True)


@dataclass
class DatasetArguments:
    """A dataset read with `datasets.load_dataset` (a Hub dataset or a local dataset folder), instead of files.
    The fields and their names are those of transformers' example `run_classification.py`."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A dataset on the Hugging Face Hub, or a local dataset folder (data files and a README.md with "
            "its `configs:` block), read with datasets.load_dataset instead of --train_file/--validation_file/"
            "--test_file. Its splits need the same columns as the files."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The dataset's configuration (subset), if it has several."}
    )
    train_split_name: str | None = field(
        default=None, metadata={"help": "The labelled training split of --dataset_name (default 'train')."}
    )
    validation_split_name: str | None = field(
        default=None,
        metadata={
            "help": "The labelled validation split of --dataset_name (default 'validation' where the dataset has "
            "one; else --validation_split_percentage of the training split is held out)."
        },
    )
    test_split_name: str | None = field(
        default=None,
        metadata={"help": "The split to predict, for --do_predict (default 'test' where the dataset has one)."},
    )

    def data_sources(self, validation=True, test=True, require_test=False):
        """(train, validation, test) of this run: the files as given, or `DatasetSplit`s of --dataset_name; None
        where there is none or it is not wanted (K-fold runs validate on each fold in turn). Giving both a
        dataset and files is an error, and so are a split named but not wanted and, with `require_test`, a
        wanted test split the dataset lacks."""
        files = [getattr(self, f"{role}_file", None) for role in ("train", "validation", "test")]
        split_names = (self.train_split_name, self.validation_split_name, self.test_split_name)
        if not self.dataset_name:
            given = [f"--{f}" for f in ("dataset_config_name", *SPLIT_FLAGS) if getattr(self, f)]
            if given:
                raise ScreeningInputError(f"{', '.join(given)} needs --dataset_name")
            return tuple(files)
        given = [f"--{role}_file" for role, path in zip(("train", "validation", "test"), files) if path]
        if given:
            raise ScreeningInputError(f"--dataset_name reads the data: drop {', '.join(given)}, or --dataset_name")
        if self.validation_split_name and not validation:
            raise ScreeningInputError("--validation_split_name: a K-fold run validates on each fold in turn; drop it")
        names = list(load_dataset_dict(self.dataset_name, self.dataset_config_name))
        sources = []
        wanted = (True, validation, test)
        for flag, given_name, default, want in zip(SPLIT_FLAGS, split_names, SPLIT_DEFAULTS, wanted):
            split = given_name or default
            if given_name and split not in names:
                raise ScreeningInputError(
                    f"--{flag}: dataset {self.dataset_name} has no split {split!r}; its splits: {', '.join(names)}"
                )
            present = want and split in names
            sources.append(DatasetSplit(self.dataset_name, self.dataset_config_name, split) if present else None)
        if test and require_test and sources[2] is None:
            raise ScreeningInputError(
                f"--do_predict: dataset {self.dataset_name} has no split {self.test_split_name or 'test'!r}; its "
                f"splits: {', '.join(names)}; name the one to predict with --test_split_name"
            )
        return tuple(sources)


SPLIT_FLAGS = ("train_split_name", "validation_split_name", "test_split_name")
SPLIT_DEFAULTS = ("train", "validation", "test")


@dataclass(frozen=True)
class DatasetSplit:
    """One split of a dataset read with `datasets.load_dataset`; its str names it in messages."""

    name: str
    config: str | None
    split: str

    def __str__(self):
        config = f", config {self.config!r}" if self.config else ""
        return f"{self.name} (split {self.split!r}{config})"

    def read(self):
        """The split as a table of text columns, as `read_table` gives a file ('' where a value is missing)."""
        frame = load_dataset_dict(self.name, self.config)[self.split].to_pandas()
        if frame.empty:
            raise ScreeningInputError(f"--dataset_name: {self} has no records")
        return as_text(frame)


@functools.cache
def load_dataset_dict(name, config=None):
    """`datasets.load_dataset(name, config)` once per run; a dataset that cannot be loaded is a one-line error."""
    import datasets

    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as err:  # datasets raises many types: not found, offline, bad config, unparsable files
        first = " ".join(str(err).split()) or type(err).__name__
        raise ScreeningInputError(
            f"--dataset_name {name}: could not load it with datasets.load_dataset ({first[:300]}); give a local "
            "dataset folder or a Hub dataset that can be reached"
        ) from None
    if not isinstance(loaded, datasets.DatasetDict):
        raise ScreeningInputError(f"--dataset_name {name}: expected a dataset with named splits")
    return loaded


def source_flag(source, flag):
    """The flag that named `source` in messages: `flag` for a file, --dataset_name for a dataset split."""
    return "--dataset_name" if isinstance(source, DatasetSplit) else flag


def load_split(source, text_columns, id_column, label_column=None, flag="--train_file"):
    """Read and check one file (named by `flag`) or `DatasetSplit`. Returns a DataFrame with the text columns,
    `id` and, when `label_column` is given, integer `labels`."""
    path, flag = source, source_flag(source, flag)
    frame = source.read() if isinstance(source, DatasetSplit) else read_table(source, flag)
    column_flags = {id_column: "--id_column", **{c: "--text_columns" for c in text_columns}}
    if label_column:
        column_flags[label_column] = "--label_column"
    check_columns(frame, list(column_flags), path, flag, column_flags)
    check_unique_ids(frame, id_column, path, flag)
    out = frame[list(text_columns)].copy()
    out.insert(0, "id", frame[id_column].to_numpy())
    if label_column:
        out["labels"] = parse_labels(frame, label_column, path, flag)
    return out.reset_index(drop=True)


def first_rows(frame, limit):
    """The first `limit` records of `frame` (all when `limit` or `frame` is None): the --max_*_samples cut."""
    return frame if frame is None or limit is None else frame.iloc[:limit].reset_index(drop=True)


def load_kfold_data(
    train_source, test_source, text_columns, id_column, label_column, group_column=None, max_train=None, max_test=None
):
    """Training frame (id, text columns, labels[, group column]) cut to its first `max_train` records and
    checked for both labels, test frame (first `max_test` records) or None, and the training groups or None.
    A source is a file path or a `DatasetSplit`."""
    extra = [group_column] if group_column and group_column not in text_columns else []
    train = load_split(train_source, list(text_columns) + extra, id_column, label_column, "--train_file")
    train = first_rows(train, max_train)
    check_two_classes(train["labels"], train_source, "--train_file")
    test = load_split(test_source, text_columns, id_column, None, "--test_file") if test_source else None
    groups = train[group_column].to_numpy() if group_column else None
    return train, first_rows(test, max_test), groups
