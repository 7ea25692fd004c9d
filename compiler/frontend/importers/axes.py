"""Axis normalization shared by importers: ONNX allows negative axes, the IR does not."""
from __future__ import annotations

from typing import Iterable

from ..registry import OnnxNode


def normalize_axis(n: OnnxNode, axis: int, rank: int) -> int:
    """``axis`` in ``[-rank, rank)`` as a non-negative int; refuse anything else."""
    if not -rank <= axis < rank:
        raise n.refuse(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def normalize_axes(n: OnnxNode, axes: Iterable[int], rank: int) -> tuple[int, ...]:
    """Sorted non-negative axes; refuse out-of-range or repeated axes."""
    out = sorted(normalize_axis(n, int(a), rank) for a in axes)
    if len(set(out)) != len(out):
        raise n.refuse(f"repeated axes {tuple(int(a) for a in axes)}")
    return tuple(out)
