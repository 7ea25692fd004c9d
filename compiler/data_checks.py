"""Checks of data against the model it is fed to, run by every command before any work starts.

The leading axis of every array is the sample axis: data for a model whose input is declared
``[B, C, H, W]`` has shape ``[N, C, H, W]`` for any N >= 1. A declared batch (1 in most fixed-batch
exports) is a property of the model's entry point, not a limit on how much data it is run on;
the executors run such a graph B samples at a time. Labels must name one of the model's classes,
so that an accuracy is never computed against labels that cannot match.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError
from .ir import Graph

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset


def check_samples(graph: Graph, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` if it is a float batch ``[N] + input shape[1:]`` for ``graph``'s single input
    (N >= 1, and a multiple of a fixed batch larger than 1); else a DataError naming ``what``."""
    value = graph.values[graph.inputs[0]]
    sample = tuple(value.shape[1:])
    expected = f"[N, {', '.join(map(str, sample))}]"
    if x.ndim != len(sample) + 1 or tuple(x.shape[1:]) != sample:
        raise DataError(f"{what}: shape {list(x.shape)}, but {graph.name!r} takes {expected}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{what}: dtype {x.dtype}; the model's input is floating point")
    if len(x) == 0:
        raise DataError(f"{what}: holds no samples")
    batch = fixed_batch(graph)
    if batch > 1 and len(x) % batch:
        raise DataError(f"{what}: {len(x)} samples, but {graph.name!r} has a fixed batch of {batch} "
                        "and runs only multiples of it")
    return x


def fixed_batch(graph: Graph) -> int:
    """How many samples one call of ``graph`` takes: 1 with a dynamic batch, else its declared batch."""
    if graph.dynamic_batch or not graph.inputs:
        return 1
    shape = graph.values[graph.inputs[0]].shape
    return int(shape[0]) if shape else 1


def num_classes(graph: Graph) -> int:
    """The classes of a classifier: the size of one sample of its first output."""
    return math.prod(graph.values[graph.outputs[0]].shape[1:])


def check_labels(graph: Graph, y: np.ndarray, what: str) -> np.ndarray:
    """``y`` if every label is a class of ``graph`` (0 .. classes-1); else a DataError naming the
    first label outside, so a wrong label set never silently scores 0."""
    classes = num_classes(graph)
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        raise DataError(f"{what}: label {int(y[bad[0]])} (sample {int(bad[0])}) is not a class of "
                        f"{graph.name!r}, which has {classes} (0..{classes - 1})")
    return y


def checked_inputs(graph: Graph, data: "str | np.ndarray", what: str) -> np.ndarray:
    """Float inputs for ``graph`` from an array, a data set spec or an .npz path, shape-checked."""
    if isinstance(data, np.ndarray):
        return check_samples(graph, data, what)
    from .data import load_dataset

    return check_samples(graph, load_dataset(data).x, f"{what} {data}")


def checked_labelled(graph: Graph, data: "str | Dataset", what: str, training: bool = False) -> "Dataset":
    """A labelled data set for ``graph`` (``training``: a bare ``fashion-mnist`` means its train
    split), its images shape-checked and every label one of the model's classes."""
    from .data import Dataset, load_dataset, load_training_data

    if not isinstance(data, Dataset):
        what = f"{what} {data}"
        data = (load_training_data if training else load_dataset)(data)
    if data.y is None:
        raise DataError(f"{what}: needs labels (an array 'y')")
    check_samples(graph, data.x, what)
    check_labels(graph, data.y, what)
    return data
