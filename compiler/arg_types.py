"""argparse ``type=`` functions: every flag's value is checked while the command line is parsed.

A bad value then fails before any work starts (no minutes of quantization before a bad seed is
noticed), with argparse's one-line usage error and exit status 2, and each rule lives once for
every command that takes the flag.
"""
from __future__ import annotations

import argparse
import re
from typing import Callable

#: prefixes whose files would collide with the build folder's own (``main.c`` is the harness)
RESERVED_PREFIXES = frozenset({"main"})
_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_SEED = 2**32 - 1  # numpy's and torch's seeds


def int_at_least(low: int, what: str = "a value") -> Callable[[str], int]:
    """An int >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be at least {low}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid <name> value"
    return parse


non_negative = int_at_least(0, "the count")
positive = int_at_least(1, "the count")


def seed(text: str) -> int:
    """A seed numpy and torch both accept: 0 .. 2**32-1."""
    value = int_at_least(0, "the seed")(text)
    if value > _MAX_SEED:
        raise argparse.ArgumentTypeError(f"the seed must be at most {_MAX_SEED}, got {value}")
    return value


def c_prefix(text: str) -> str:
    """A C identifier that names the model's files without overwriting the harness's."""
    if not _C_IDENT.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a C identifier")
    if text in RESERVED_PREFIXES:
        raise argparse.ArgumentTypeError(f"{text!r} is reserved: {text}.c is the test harness's file")
    return text


def torch_device(text: str) -> str:
    """A torch device this torch build can use (``cpu``, or ``cuda[:N]`` when CUDA is present)."""
    if text == "cpu":  # no torch import just to parse the default
        return text
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: this torch build sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r}: pqc runs on cpu or cuda devices")
    return text
