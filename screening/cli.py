"""What every entry point shares: argument parsing (flags, or one .json/.yaml file; mistakes are one-line
`ScreeningInputError`s, see `screening.errors.exit_on_input_error`) and the closing summary."""

import argparse
import json
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .errors import ScreeningInputError
from .metrics import recall_sentence


class ArgumentParser(HfArgumentParser):
    """HfArgumentParser whose errors (unknown flag, bad value) are one line: `error: ...`, exit 2."""

    def error(self, message):
        raise ScreeningInputError(message)


class ScriptArgumentParser(argparse.ArgumentParser):
    """argparse for the benchmark and tool scripts, with the same one-line errors as ArgumentParser."""

    def error(self, message):
        raise ScreeningInputError(message)

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            raise ScreeningInputError(f"unknown arguments: {' '.join(unknown)} (see --help)")
        return parsed


def read_args_file(path):
    """The arguments in a .json or .yaml file, as a dict; a one-line error naming the file and the place."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScreeningInputError(f"{path}: cannot read the arguments file ({type(err).__name__})") from None
    try:
        args = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}"
        raise ScreeningInputError(f"{path}: not valid JSON: {err.msg} at {where}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ScreeningInputError(f"{path}: not valid YAML: {problem}{where}") from None
    if not isinstance(args, dict):
        raise ScreeningInputError(f"{path}: expected a mapping of argument names to values, got {type(args).__name__}")
    return args


def parse_args(dataclass_types, argv=None):
    """The argument dataclasses from flags, or from a single .json/.yaml file of arguments.
    Any mistake (unknown flag, bad value, failed check) is a one-line ScreeningInputError."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = ArgumentParser(dataclass_types)
    from_file = len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml"))
    try:
        if from_file:
            return parser.parse_dict(read_args_file(argv[0]))
        *parsed, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ScreeningInputError:
        raise
    except (ValueError, TypeError) as err:  # unknown keys, or a check in a dataclass's __post_init__
        raise ScreeningInputError((f"{argv[0]}: " if from_file else "") + " ".join(str(err).split())) from None
    if unknown:
        raise ScreeningInputError(f"unknown arguments: {' '.join(unknown)} (see --help)")
    return tuple(parsed)


def print_summary(figures, results, output_dir):
    """The closing lines of a run: `Done.` and `figures` (name -> value), the recall sentence of `results`
    (screening.metrics.recall_sentence) and the files written to `output_dir`."""
    out = Path(output_dir).resolve()
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    sentence = recall_sentence(results)
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.is_file())) if out.is_dir() else ""
    print(f"\nDone. {shown}\n" + (sentence + "\n" if sentence else "") + f"Outputs in {out}: {files}")
