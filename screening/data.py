"""Loading and checking screening tables (CSV or JSON lines) and building model texts."""

import re
from pathlib import Path

import numpy as np
import pandas as pd


class ScreeningInputError(ValueError):
    """A user's input is wrong; the message is one line naming the file and column, row or flag."""


def _rows(index, limit=10):
    """1-based data-row numbers (the header is not counted) for messages."""
    rows = [int(i) + 1 for i in index[:limit]]
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return ", ".join(map(str, rows)) + more


def read_table(path, flag="--train_file"):
    """Read CSV (`.csv`) or JSON lines (`.json`, `.jsonl`) with every column as text; empty stays ''."""
    path = Path(path)
    if not path.is_file():
        raise ScreeningInputError(f"{flag}: file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        elif suffix in (".json", ".jsonl"):
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
            frame = frame.astype(object).where(frame.notna(), "").astype(str)
        else:
            raise ScreeningInputError(f"{flag}: {path}: expected a .csv, .json or .jsonl file")
    except UnicodeDecodeError as err:
        raise ScreeningInputError(f"{flag}: {path} is not UTF-8 text (byte {err.start})") from None
    except pd.errors.EmptyDataError:
        raise ScreeningInputError(f"{flag}: {path} is empty") from None
    except (pd.errors.ParserError, ValueError) as err:
        if isinstance(err, ScreeningInputError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ScreeningInputError(f"{flag}: {path} could not be parsed: {first}") from None
    if frame.empty:
        raise ScreeningInputError(f"{flag}: {path} has no data rows")
    return frame


def check_columns(frame, columns, path, flag):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ScreeningInputError(
            f"{flag}: {path} has no column {', '.join(map(repr, missing))}; "
            f"columns present: {', '.join(map(str, frame.columns))}"
        )


def parse_labels(frame, column, path, flag):
    """0/1 integer labels; anything else is an error naming its rows."""
    raw = frame[column].astype(str).str.strip()
    bad = raw[~raw.isin(["0", "1", "0.0", "1.0"])]
    if len(bad):
        examples = ", ".join(sorted({repr(v) for v in bad.iloc[:5]}))
        raise ScreeningInputError(
            f"{flag}: {path}: column {column!r} must hold 0 or 1; rows {_rows(bad.index)} hold {examples}"
        )
    return raw.astype(float).astype(np.int64).to_numpy()


def check_unique_ids(frame, column, path, flag):
    duplicated = frame.index[frame[column].duplicated(keep=False)]
    if len(duplicated):
        raise ScreeningInputError(
            f"{flag}: {path}: column {column!r} has duplicate ids {sorted(set(frame.loc[duplicated, column]))[:5]} "
            f"(rows {_rows(duplicated)})"
        )


def load_split(path, text_columns, id_column, label_column=None, flag="--train_file"):
    """Read and check one file. Returns a DataFrame with the text columns, `id` and, when
    `label_column` is given, integer `labels`."""
    frame = read_table(path, flag)
    check_columns(frame, [id_column, *text_columns] + ([label_column] if label_column else []), path, flag)
    check_unique_ids(frame, id_column, path, flag)
    out = frame[list(text_columns)].copy()
    out.insert(0, "id", frame[id_column].to_numpy())
    if label_column:
        out["labels"] = parse_labels(frame, label_column, path, flag)
    return out.reset_index(drop=True)


_WS = re.compile(r"\s+")


def build_texts(frame, text_columns, separator):
    """One text per record: the text columns joined by ` {separator} ` (empty parts kept, so
    every record has the same layout), whitespace collapsed."""
    parts = [frame[c].astype(str).map(lambda s: _WS.sub(" ", s).strip()) for c in text_columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + f" {separator} " + part
    return joined.str.strip().tolist()
