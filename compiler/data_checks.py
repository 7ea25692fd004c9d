"""Checks of data against the model it is fed to, run by every command before any work starts.

The leading axis of every array is the sample axis: data for a model whose input is declared
``[B, C, H, W]`` has shape ``[N, C, H, W]`` for any N >= 1. A declared batch (1 in most fixed-batch
exports) is a property of the model's entry point, not a limit on how much data it is run on;
the executors run such a graph B samples at a time. Labels must name one of the model's classes,
so that an accuracy is never computed against labels that cannot match.

A model with several inputs takes its data as a dict by input name (from an ``.npz`` holding an
array per input name, `pqc.data.load_inputs`), every array checked against its input and all
with the same N.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, NamedTuple, Union

import numpy as np

from .errors import DataError
from .ir import Graph

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset

#: a model's float inputs: one array (single input) or a dict by input name
Feeds = Union[np.ndarray, Mapping[str, np.ndarray]]


def check_samples(graph: Graph, x: np.ndarray, what: str, name: str | None = None) -> np.ndarray:
    """``x`` if it is a float batch ``[N] + input shape[1:]`` for ``graph``'s input ``name``
    (default: the first; N >= 1, and a multiple of a fixed batch larger than 1); else a
    DataError naming ``what``."""
    value = graph.values[name or graph.inputs[0]]
    sample = tuple(value.shape[1:])
    expected = f"[N, {', '.join(map(str, sample))}]"
    if x.ndim != len(sample) + 1 or tuple(x.shape[1:]) != sample:
        takes = f"input {name!r} of {graph.name!r} is" if name else f"{graph.name!r} takes"
        raise DataError(f"{what}: shape {list(x.shape)}, but {takes} {expected}")
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


def num_classes(graph: Graph, output: str | None = None) -> int:
    """The classes of a classifier: the size of one sample of its output ``output`` (default:
    the first)."""
    return math.prod(graph.values[output or graph.outputs[0]].shape[1:])


def classifier_output(graph: Graph, output: str | None) -> str:
    """The output accuracy is measured on: ``output`` when it names one of ``graph``'s outputs
    (else a PqcError listing them), the first when None."""
    if output is None:
        return graph.outputs[0]
    if output not in graph.outputs:
        raise DataError(f"--output {output!r}: {graph.name!r} has outputs {', '.join(graph.outputs)}")
    return output


def check_labels(graph: Graph, y: np.ndarray, what: str, output: str | None = None) -> np.ndarray:
    """``y`` if every label is a class of ``graph``'s output ``output`` (default: the first; 0 ..
    classes-1); else a DataError naming the first label outside, so a wrong label set never
    silently scores 0."""
    classes = num_classes(graph, output)
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        raise DataError(f"{what}: label {int(y[bad[0]])} (sample {int(bad[0])}) is not a class of "
                        f"{graph.name!r}, which has {classes} (0..{classes - 1})")
    return y


def check_feeds(graph: Graph, feeds: Feeds, what: str) -> Feeds:
    """``feeds`` checked for ``graph``: one array for a single-input model (`check_samples`), a
    dict naming every input (each array checked, all with the same N) for any model. What comes
    back is one array for a single-input model, else the dict."""
    if not isinstance(feeds, Mapping):
        if len(graph.inputs) != 1:
            raise DataError(f"{what}: {graph.name!r} has inputs {graph.inputs}; give an array per input name")
        return check_samples(graph, feeds, what)
    missing = [n for n in graph.inputs if n not in feeds]
    if missing:
        raise DataError(f"{what}: no array for input {missing[0]!r} (the inputs of {graph.name!r} are "
                        f"{', '.join(graph.inputs)})")
    checked = {n: check_samples(graph, feeds[n], f"{what}: array {n!r}", n) for n in graph.inputs}
    counts = {n: len(a) for n, a in checked.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"{what}: the inputs hold different sample counts {counts}")
    return checked if len(graph.inputs) > 1 else checked[graph.inputs[0]]


def checked_inputs(graph: Graph, data: "str | Feeds", what: str) -> Feeds:
    """Float inputs for ``graph`` from an array (or dict by input name), a data set spec or an
    .npz path, shape-checked: one array for a single-input model, else a dict by input name
    (an .npz holds an array per input name; for a single input, ``x`` will do)."""
    if isinstance(data, (np.ndarray, Mapping)):
        return check_feeds(graph, data, what)
    from .data import load_dataset, load_inputs

    bundled = data.split(":")[0] == "fashion-mnist"
    if len(graph.inputs) == 1:  # a data set, or an .npz with an array named after the input (or 'x')
        x = load_dataset(data).x if bundled else load_inputs(data, graph.inputs)[graph.inputs[0]]
        return check_samples(graph, x, f"{what} {data}")
    if bundled:
        raise DataError(f"{what} {data}: {graph.name!r} has inputs {graph.inputs}; give an .npz with an array "
                        f"per input name")
    return check_feeds(graph, load_inputs(data, graph.inputs), f"{what} {data}")


def sample_count(feeds: Feeds) -> int:
    """How many samples checked feeds hold."""
    return len(next(iter(feeds.values())) if isinstance(feeds, Mapping) else feeds)


def take_samples(feeds: Feeds, n: int) -> Feeds:
    """The first ``n`` samples of every array."""
    return {k: a[:n] for k, a in feeds.items()} if isinstance(feeds, Mapping) else feeds[:n]


class Labelled(NamedTuple):
    """Labelled inputs for a model of any number of inputs (``x``: `Feeds`)."""

    x: Feeds
    y: np.ndarray
    name: str


def checked_labelled_feeds(graph: Graph, data: "str | Dataset | Labelled", what: str,
                           output: str | None = None) -> Labelled:
    """Labelled data for ``graph``, every label a class of ``output`` (default: the first): for a
    single-input model what `checked_labelled` reads, for several inputs an .npz holding an
    array per input name and labels ``y``."""
    if isinstance(data, Labelled):
        check_feeds(graph, data.x, what)
        check_labels(graph, data.y, what, output)
        return data
    if len(graph.inputs) == 1:
        ds = checked_labelled(graph, data, what, output=output)
        return Labelled(ds.x, ds.y, data if isinstance(data, str) else ds.name)
    from .data import load_labels

    if not isinstance(data, str) or data.split(":")[0] == "fashion-mnist":
        raise DataError(f"{what} {data if isinstance(data, str) else ''}: {graph.name!r} has inputs {graph.inputs}; "
                        f"give an .npz with an array per input name and labels 'y'")
    what = f"{what} {data}"
    x = check_feeds(graph, checked_inputs(graph, data, what), what)
    y = load_labels(data, sample_count(x))
    check_labels(graph, y, what, output)
    return Labelled(x, y, data)


def checked_labelled(graph: Graph, data: "str | Dataset", what: str, training: bool = False,
                     output: str | None = None) -> "Dataset":
    """A labelled data set for ``graph`` (``training``: a bare ``fashion-mnist`` means its train
    split), its images shape-checked and every label one of the model's classes."""
    from .data import Dataset, load_dataset, load_training_data

    if not isinstance(data, Dataset):
        what = f"{what} {data}"
        data = (load_training_data if training else load_dataset)(data)
    if data.y is None:
        raise DataError(f"{what}: needs labels (an array 'y')")
    check_samples(graph, data.x, what)
    check_labels(graph, data.y, what, output)
    return data
