"""A run's output folder: never overwrite results unasked, resume from the last complete checkpoint, and
write metrics atomically."""

import json
import logging
import re
from pathlib import Path

from . import io
from .data import ScreeningInputError

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"  # transformers' Trainer writes it last in a checkpoint folder


def is_complete_checkpoint(folder):
    """A checkpoint is complete once its trainer state (written last by Trainer) is there and parses; a folder
    without it was being written when the run died."""
    try:
        json.loads((Path(folder) / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def checkpoints(output_dir):
    """`checkpoint-N` folders of `output_dir`, by step."""
    found = [p for p in Path(output_dir).iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def last_complete_checkpoint(output_dir):
    """The complete checkpoint with the highest step, or None; incomplete later ones are skipped with a warning."""
    for folder in reversed(checkpoints(output_dir)):
        if is_complete_checkpoint(folder):
            return folder
        logger.warning(f"Skipping {folder}: incomplete (no readable {TRAINER_STATE}), the run stopped while saving it")
    return None


def resolve_output_dir(output_dir, result_files, do_train, overwrite=False, resume_from_checkpoint=None):
    """transformers' convention, checked before anything is written. Returns the checkpoint to resume from.

    - `--resume_from_checkpoint PATH`: PATH must be a complete checkpoint.
    - `--overwrite_output_dir`: start over, whatever the folder holds.
    - checkpoints in the folder and `--do_train`: resume from the last complete one.
    - otherwise, any of `result_files` in the folder is an error (results are never overwritten unasked).
    """
    out = Path(output_dir)
    if resume_from_checkpoint:
        if not is_complete_checkpoint(resume_from_checkpoint):
            raise ScreeningInputError(
                f"--resume_from_checkpoint: {resume_from_checkpoint} is not a complete checkpoint folder "
                f"(no readable {TRAINER_STATE})"
            )
        return str(resume_from_checkpoint)
    if overwrite or not out.is_dir():
        return None
    if do_train:
        last = last_complete_checkpoint(out)
        if last is not None:
            logger.warning(f"Resuming from {last}, the last checkpoint in {out}; --overwrite_output_dir starts over")
            return str(last)
    found = [name for name in result_files if (out / name).exists()]
    if found:
        raise ScreeningInputError(
            f"--output_dir {out} already holds results ({', '.join(found)}); "
            "use --overwrite_output_dir to replace them, or another --output_dir"
        )
    return None


def save_metrics(output_dir, split, metrics, all_metrics):
    """Trainer.save_metrics, atomically: `{split}_results.json`, and `all_results.json` with `all_metrics`
    (this run's metrics so far, updated in place, so results of an earlier run never leak in)."""
    all_metrics.update(metrics)
    io.write_json(Path(output_dir) / f"{split}_results.json", metrics)
    io.write_json(Path(output_dir) / "all_results.json", all_metrics)


def save_trainer_state(trainer, output_dir):
    """Trainer.save_state, atomically."""
    with io.atomic_path(Path(output_dir) / TRAINER_STATE) as tmp:
        trainer.state.save_to_json(str(tmp))
