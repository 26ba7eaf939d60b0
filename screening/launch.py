"""Checks of how a run is launched (devices, precision) before anything is loaded or written."""

from .data import ScreeningInputError


def check_precision(training_args):
    """fp16 needs a GPU: on CPU, torch runs it silently in fp32 or fails deep in training. bf16 works on CPU."""
    if training_args.fp16 and training_args.device.type == "cpu":
        raise ScreeningInputError("--fp16 needs a GPU (none is used here); on CPU use --bf16 or full precision")
