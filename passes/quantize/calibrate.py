"""Calibration: run the float model over calibration inputs and summarize activations.

`calibrate` validates the data, runs `pqc.executor.FloatExecutor` batch by batch, and keeps for
each requested activation its exact minimum and maximum and a uniform random sample of its
values (at most ``max_samples``, drawn with a generator seeded by ``seed``, so results are
deterministic). Clipping searches run on the sample and take the range from the exact extremes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from pqc.errors import DataError
from pqc.ir import Graph

CalibData = np.ndarray | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ActivationStats:
    """Extremes of one activation over the calibration set and a sample of its values."""

    lo: float
    hi: float
    sample: np.ndarray


def check_calibration_data(graph: Graph, data: CalibData | None) -> dict[str, np.ndarray]:
    """The calibration feeds by input name, as float arrays of the inputs' dtypes.

    Each must be a floating-point numpy array of shape ``[N] + input_shape[1:]`` (N >= 1, the same
    N for all inputs) with finite values; a single array is accepted for a single-input graph.
    Raises `DataError` otherwise.
    """
    if data is None:
        raise DataError("calibration data is required (an array of inputs shaped [N, ...])")
    if not isinstance(data, Mapping):
        if len(graph.inputs) != 1:
            raise DataError(f"graph {graph.name!r} has inputs {graph.inputs}: give calibration data as a dict by name")
        data = {graph.inputs[0]: data}
    if set(data) != set(graph.inputs):
        raise DataError(f"calibration data names {sorted(data)} do not match the graph inputs {graph.inputs}")
    feeds: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        array, value = data[name], graph.values[name]
        expected = "[N, " + ", ".join(map(str, value.shape[1:])) + "]"
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise DataError(f"calibration data for {name!r} must be a float array shaped {expected}, got {kind}")
        if array.ndim != len(value.shape) or array.shape[1:] != tuple(value.shape[1:]) or array.shape[0] < 1:
            raise DataError(f"calibration data for {name!r} has shape {list(array.shape)}, expected {expected}")
        if not np.all(np.isfinite(array)):
            raise DataError(f"calibration data for {name!r} contains NaN or infinite values")
        feeds[name] = array.astype(value.dtype, copy=False)
    if len({a.shape[0] for a in feeds.values()}) > 1:
        raise DataError(f"calibration inputs of graph {graph.name!r} have different sample counts")
    return feeds


#: the most bytes of captured float32 activations one calibration chunk may hold
CAPTURE_BYTES = 256 << 20


def calibrate(
    graph: Graph,
    data: CalibData | None,
    names: Iterable[str],
    *,
    max_samples: int = 1 << 16,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, ActivationStats]:
    """`ActivationStats` of every value in ``names`` (activations or graph inputs).

    A graph without a dynamic batch runs in chunks of its declared batch size, which must then
    divide the number of samples; a dynamic batch runs ``batch_size`` samples at a time, fewer
    when their captured activations would pass `CAPTURE_BYTES` (an ImageNet-size network keeps
    about 40 MB of activations per sample).
    """
    from pqc.executor import FloatExecutor  # local: keeps `import pqc.passes` free of torch

    feeds = check_calibration_data(graph, data)
    count = next(iter(feeds.values())).shape[0]
    names = list(dict.fromkeys(names))
    per_sample = 4 * sum(int(np.prod(graph.values[n].shape[1:])) for n in names)
    step = (max(1, min(batch_size, CAPTURE_BYTES // max(per_sample, 1))) if graph.dynamic_batch
            else graph.values[graph.inputs[0]].shape[0])
    if count % step and not graph.dynamic_batch:
        raise DataError(
            f"graph {graph.name!r} has a fixed batch of {step}; {count} calibration samples is not a multiple"
        )
    executor = FloatExecutor(graph, device=device)
    rng = np.random.default_rng(seed)
    lo = {n: math.inf for n in names}
    hi = {n: -math.inf for n in names}
    samples: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, count, step):
        chunk = {k: v[start:start + step] for k, v in feeds.items()}
        rows = next(iter(chunk.values())).shape[0]
        captured = executor.run(chunk, batch_size=step, capture=names)
        for name in names:
            flat = captured[name].reshape(-1)
            lo[name], hi[name] = min(lo[name], float(flat.min())), max(hi[name], float(flat.max()))
            take = min(flat.size, math.ceil(max_samples * rows / count))
            samples[name].append(flat[rng.choice(flat.size, take, replace=False)] if take < flat.size else flat)
    return {n: ActivationStats(lo[n], hi[n], np.concatenate(samples[n]).astype(np.float64)) for n in names}
