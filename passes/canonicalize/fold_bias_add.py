"""A constant per-channel Add after a Conv or Gemm folded into the layer's bias.

Invariant established: an ``Add(y, c)`` (no ``act``) whose ``y`` is the output of a Conv or a
canonical Gemm (constant weight, transB=1, alpha=beta=1, see `normalize_gemm`) without an
``act``, read by nothing else, with ``c`` constant and constant along everything but the
channel axis (axis 1), is gone: ``c`` was added to the layer's bias. Exporters that write a
layer as MatMul + Add, or a bias as a separate Add, end up with one Conv/Gemm.
"""
from __future__ import annotations

import numpy as np

from pqc.ir import Graph

from pqc.passes.canonicalize.rewrite import absorb, is_linear_layer, sole_reader


def fold_bias_add(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers_map()
    for add in [n for n in g.nodes if n.op == "Add" and n.attrs.get("act") is None]:
        layer = producers.get(add.inputs[0])
        if layer is None or not is_linear_layer(g, layer) or sole_reader(g, layer.outputs[0]) is not add:
            continue
        channels = _per_channel(g.const(add.inputs[1]), g.values[layer.outputs[0]].shape)
        if channels is None:
            continue
        old = g.const(layer.inputs[2]) if len(layer.inputs) > 2 else np.zeros_like(channels)
        bias = g.add_const(f"{layer.name}_bias", (old.reshape(-1) + channels).astype(np.float32))
        layer.inputs = [layer.inputs[0], layer.inputs[1], bias.name]
        absorb(g, layer, add)
    g.prune_unused()
    return g


def _per_channel(c: np.ndarray | None, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as a vector over axis 1 of ``out_shape`` when adding it broadcasts that way, else None."""
    if c is None or c.ndim > len(out_shape):
        return None
    full = (1,) * (len(out_shape) - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, out_shape[1]):
        return None
    return np.broadcast_to(c.reshape(-1), (out_shape[1],)).astype(np.float64)
