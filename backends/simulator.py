"""The integer simulator: the golden model of the generated C, batched and exact.

`simulate` runs an integer graph (from `pqc.passes.lower`) by dispatching each node to its
`IntOpDef.simulate`; ops accumulate exactly in float64 where that is faster (every
int32-bounded sum of integer products is exact below 2^53), then round and clamp in int64.
Values are stored in their declared dtype (int8, uint8, int32), as the C holds them.

Also here: the input quantizer firmware must mirror (`quantize_input`), `dequantize`, and a
layer-by-layer debugger (`first_mismatch`) that finds the first layer where two runs differ.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Union

import numpy as np

from pqc.errors import DataError
from pqc.ir import Graph

from ..intmath import round_half_away, value_range
from ..intops import get_int_op

#: samples per simulated chunk: bounds the memory of float64 intermediates
CHUNK = 1024
#: a program's inputs: one array for a single-input program, or a dict by input name
Inputs = Union[np.ndarray, Mapping[str, np.ndarray]]


def by_input(graph: Graph, x: Inputs) -> dict[str, np.ndarray]:
    """``x`` as a dict by input name: one array is a single-input program's input; a dict must
    name every input and no other (else a DataError naming the culprit)."""
    if not isinstance(x, Mapping):
        if len(graph.inputs) != 1:
            raise DataError(f"program {graph.name!r} has inputs {graph.inputs}: give a dict of arrays by input name")
        return {graph.inputs[0]: np.asarray(x)}
    missing = [n for n in graph.inputs if n not in x]
    extra = sorted(set(x) - set(graph.inputs))
    if missing or extra:
        raise DataError(f"program {graph.name!r} takes inputs {graph.inputs}; "
                        + (f"missing {missing}" if missing else f"unexpected {extra}"))
    return {n: np.asarray(x[n]) for n in graph.inputs}


def simulate(graph: Graph, x: Inputs, capture: bool = False) -> dict[str, np.ndarray]:
    """Run ``graph`` on the quantized input batch ``x`` (integers, shape [N, ...]; a dict by
    input name for several inputs, all with the same N).

    Returns ``{output name: array}``, or with ``capture`` every activation (inputs and each
    node output), which is what `first_mismatch` compares against the C harness's dumps.
    Large batches run in chunks of `CHUNK` samples.
    """
    feeds = by_input(graph, x)
    for name, a in feeds.items():
        expected = tuple(graph.values[name].shape[1:])
        if a.ndim != len(expected) + 1 or tuple(a.shape[1:]) != expected:
            raise DataError(f"input {name!r}: expected shape [N, {', '.join(map(str, expected))}], got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"input {name!r}: expected integers (see quantize_input), got {a.dtype}")
        meta = graph.values[name].meta
        lo, hi = value_range(graph.values[name])
        if a.size and (a.min() < lo or a.max() > hi):
            raise DataError(f"input {name!r}: values outside the {meta['bits']}-bit input range [{lo}, {hi}]")
    counts = {len(a) for a in feeds.values()}
    if len(counts) > 1:
        raise DataError(f"inputs of program {graph.name!r} hold different sample counts {sorted(counts)}")
    n = counts.pop()
    chunks = [_run(graph, {k: a[i:i + CHUNK] for k, a in feeds.items()}, capture) for i in range(0, max(n, 1), CHUNK)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _run(graph: Graph, feeds: dict[str, np.ndarray], capture: bool) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = {k: a.astype(graph.values[k].dtype) for k, a in feeds.items()}
    consts = {k: v.data for k, v in graph.values.items() if v.is_const}
    remaining = _uses(graph)
    keep = set(graph.outputs)
    captured: dict[str, np.ndarray] = dict(env) if capture else {}
    for node in graph.nodes:
        ins = [env[i] if i in env else consts[i] for i in node.inputs]
        outs = get_int_op(node.op).simulate(node, ins)
        for name, out in zip(node.outputs, outs):
            env[name] = out.astype(graph.values[name].dtype, copy=False)
            if capture:
                captured[name] = env[name]
        for i in node.inputs:  # free what no later node reads
            remaining[i] = remaining.get(i, 1) - 1
            if remaining[i] == 0 and i in env and i not in keep:
                del env[i]
    return captured if capture else {o: env[o] for o in graph.outputs}


def _uses(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes:
        for i in node.inputs:
            counts[i] = counts.get(i, 0) + 1
    return counts


def quantize_input(graph: Graph, x: Inputs) -> np.ndarray | dict[str, np.ndarray]:
    """Float input -> the integers the program reads: ``clamp(round_half_away(x / 2^e), qmin, qmax)``.

    Round half away from zero is what firmware gets from ``lround``-style code and is symmetric
    in sign; the exponent and range are the input value's (``meta["exp"]``, ``meta["bits"]``).
    One array in, one array out; a dict by input name (several inputs) gives a dict, each input
    quantized with its own exponent and range.
    """
    feeds = by_input(graph, x)
    out = {}
    for name, a in feeds.items():
        v = graph.values[name]
        q = round_half_away(np.asarray(a, dtype=np.float64) * 2.0 ** -v.meta["exp"])
        out[name] = np.clip(q, *value_range(v)).astype(v.dtype)
    return out if isinstance(x, Mapping) else out[graph.inputs[0]]


def dequantize(graph: Graph, name: str, q: np.ndarray) -> np.ndarray:
    """The real values ``q * 2^exp`` of activation ``name`` (float64, exact)."""
    return np.asarray(q, dtype=np.float64) * 2.0 ** graph.values[name].meta["exp"]


class Mismatch(NamedTuple):
    """Where two runs first differ: the producing node, the element's index, and both values."""

    node: str
    index: tuple[int, ...]
    a: int
    b: int


def first_mismatch(graph: Graph, dumps_a: dict[str, np.ndarray], dumps_b: dict[str, np.ndarray]) -> Mismatch | None:
    """The first layer (in program order) whose output differs between two dumps, or None.

    Dumps map activation names to arrays (a simulator ``capture`` or the C harness's files);
    values missing from either side are skipped; arrays are compared as flat sequences of the
    same length (the C writes flat buffers) and the index is given in ``dumps_a``'s shape.
    An input is reported as node ``"<input>"``.
    """
    producers = {o: n.name for n in graph.nodes for o in n.outputs}
    for name in graph.activations():
        if name not in dumps_a or name not in dumps_b:
            continue
        a, b = np.asarray(dumps_a[name]), np.asarray(dumps_b[name])
        if a.size != b.size:
            raise DataError(f"value {name!r}: dumps hold {a.size} and {b.size} elements")
        diff = np.flatnonzero(a.reshape(-1).astype(np.int64) != b.reshape(-1).astype(np.int64))
        if diff.size:
            i = int(diff[0])
            index = tuple(int(j) for j in np.unravel_index(i, a.shape))
            return Mismatch(producers.get(name, "<input>"), index, int(a.reshape(-1)[i]), int(b.reshape(-1)[i]))
    return None
