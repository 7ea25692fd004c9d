"""BatchNormalization removed for inference.

Invariant established: no BatchNormalization node remains. A BN whose input is the output of
a Conv or Gemm (with a constant ``[out, in]`` weight, transB=1, see `normalize_gemm`) without a
fused activation, read by nothing else, is folded into that layer's weight and bias; the layer
keeps the BN scale vector gamma in ``node.meta["bn_scale"]`` because reconstruction (RAPQ) reads
it after folding. Any other BN becomes ``Mul`` then ``Add`` by per-channel constants (shape
``[C, 1, ..., 1]``, broadcasting over axis 1), which lowering turns into an integer affine.
"""
from __future__ import annotations

import numpy as np

from pqc.ir import Graph, Node, Value

from pqc.passes.canonicalize.rewrite import absorb, is_linear_layer, sole_reader


def fold_batchnorm(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers_map()
    for bn in [n for n in g.nodes if n.op == "BatchNormalization"]:
        layer = producers.get(bn.inputs[0])
        if layer is not None and is_linear_layer(g, layer) and sole_reader(g, layer.outputs[0]) is bn:
            _fold_into_layer(g, layer, bn)
        else:
            _to_affine(g, bn)
    g.prune_unused()
    return g


def bn_affine(g: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(a, c)`` with ``BN(x) = a * x + c``, computed in float64."""
    gamma, beta, mean, var = (g.const(i).astype(np.float64) for i in bn.inputs[1:5])
    a = gamma / np.sqrt(var + float(bn.attrs["epsilon"]))
    return a, beta - mean * a


def _fold_into_layer(g: Graph, layer: Node, bn: Node) -> None:
    a, c = bn_affine(g, bn)
    weight = g.const(layer.inputs[1])
    bias_name = layer.inputs[2] if len(layer.inputs) > 2 else ""
    bias = g.const(bias_name) if bias_name else np.zeros(weight.shape[0])
    scale = a.reshape((-1,) + (1,) * (weight.ndim - 1))
    new_w = g.add_const(f"{layer.name}_weight", (weight * scale).astype(weight.dtype))
    new_b = g.add_const(f"{layer.name}_bias", (bias.reshape(-1) * a + c).astype(weight.dtype))
    layer.inputs = [layer.inputs[0], new_w.name, new_b.name]
    layer.meta["bn_scale"] = g.const(bn.inputs[1]).copy()
    absorb(g, layer, bn)


def _to_affine(g: Graph, bn: Node) -> None:
    a, c = bn_affine(g, bn)
    x = g.values[bn.inputs[0]]
    channel_shape = (-1,) + (1,) * (len(x.shape) - 2)
    scale = g.add_const(f"{bn.name}_scale", a.reshape(channel_shape).astype(np.float32))
    shift = g.add_const(f"{bn.name}_shift", c.reshape(channel_shape).astype(np.float32))
    scaled = g.add_value(Value(g.unique_name(f"{bn.outputs[0]}_scaled"), x.shape, x.dtype))
    mul = Node("Mul", [x.name, scale.name], [scaled.name], {}, g.unique_name(f"{bn.name}_mul"))
    add = Node("Add", [scaled.name, shift.name], [bn.outputs[0]], {"act": None}, g.unique_name(f"{bn.name}_add"))
    index = g.nodes.index(bn)
    g.nodes[index:index + 1] = [mul, add]
