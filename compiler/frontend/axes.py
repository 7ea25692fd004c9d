"""Axis handling shared by importers: ONNX allows negative axes, the IR does not; and with a
dynamic batch, axis 0 of every activation is the batch, which no op may reshape or mix."""
from __future__ import annotations

from typing import Iterable

from .registry import OnnxNode


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


def check_not_batch_axis(n: OnnxNode, axes: Iterable[int], what: str) -> None:
    """Refuse an op that acts on axis 0 of a dynamic-batch model: the import pinned that axis to
    1, and the result would be wrong for any other batch size."""
    if n.dynamic_batch and 0 in set(axes):
        raise n.refuse(f"{what} acts on the batch axis 0 of a dynamic-batch model; export the model with a static batch size")
