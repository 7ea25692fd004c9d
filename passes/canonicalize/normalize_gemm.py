"""Fully connected layers in the one layout lowering and quantization expect.

Invariant established, for every Gemm whose ``B`` is a constant and ``transA == 0`` (every
MatMul of a rank-2 activation by a rank-2 constant first becomes such a Gemm):

* ``B`` is stored ``[out, in]`` with ``transB = 1`` (output feature on axis 0, like a Conv);
* ``alpha = beta = 1``: alpha is folded into ``B``, beta into ``C``;
* ``C`` is absent or a vector of shape ``[out]``;
* a Reshape or Flatten producing its input is ``Flatten(axis=1)`` whenever it computes the same
  thing (its output is ``[N, prod(rest)]`` of its input ``[N, ...]``).

Gemms that do not fit (``transA = 1``, a non-constant ``B``, a ``C`` that varies along the
batch) are left as they are.
"""
from __future__ import annotations

import math

import numpy as np

from pqc.ir import Graph, Node

_FLATTENING = ("Reshape", "Flatten")


def normalize_gemm(graph: Graph) -> Graph:
    g = graph.copy()
    for node in g.nodes:
        if node.op == "MatMul" and _matmul_is_dense(g, node):
            _matmul_to_gemm(g, node)
        if node.op == "Gemm" and not node.attrs["transA"] and g.const(node.inputs[1]) is not None:
            _canonical_gemm(g, node)
    producers = g.producers_map()
    for node in g.nodes:
        if node.op == "Gemm":
            src = producers.get(node.inputs[0])
            if src is not None and src.op in _FLATTENING and _is_flatten_1(g, src):
                src.op, src.attrs = "Flatten", {"axis": 1}
    g.prune_unused()
    return g


def _matmul_is_dense(g: Graph, node: Node) -> bool:
    a, b = (g.values[i] for i in node.inputs)
    return not a.is_const and b.is_const and len(a.shape) == 2 and len(b.shape) == 2


def _matmul_to_gemm(g: Graph, node: Node) -> None:
    """``MatMul(a, B)`` with ``B`` ``[in, out]`` becomes ``Gemm(a, B^T)``, transB=1."""
    weight = g.const(node.inputs[1])
    new = g.add_const(f"{node.name}_weight", np.ascontiguousarray(weight.T))
    node.op, node.inputs = "Gemm", [node.inputs[0], new.name]
    node.attrs = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 1, "act": None}


def _canonical_gemm(g: Graph, node: Node) -> None:
    a = node.attrs
    weight = g.const(node.inputs[1])
    alpha, beta = float(a["alpha"]), float(a["beta"])
    out_features = g.values[node.outputs[0]].shape[1]
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = g.const(bias_name)
    if bias_name and bias is None:
        return  # a computed C: leave the Gemm as it is
    if bias is not None and bias.size != out_features and bias.size != 1:
        return  # C varies along the batch
    if a["transB"] and alpha == 1.0 and beta == 1.0 and (bias is None or bias.shape == (out_features,)):
        return
    new_weight = weight if a["transB"] else weight.T
    if alpha != 1.0:
        new_weight = new_weight * np.asarray(alpha, weight.dtype)
    node.inputs = [node.inputs[0], g.add_const(f"{node.name}_weight", np.ascontiguousarray(new_weight)).name]
    if bias is not None:
        vector = np.broadcast_to(bias.reshape(-1) * np.asarray(beta, bias.dtype), (out_features,))
        node.inputs.append(g.add_const(f"{node.name}_bias", np.ascontiguousarray(vector)).name)
    a.update(alpha=1.0, beta=1.0, transA=0, transB=1)


def _is_flatten_1(g: Graph, node: Node) -> bool:
    src, dst = g.values[node.inputs[0]].shape, g.values[node.outputs[0]].shape
    if node.op == "Flatten" and node.attrs.get("axis") == 1:
        return False  # already normal
    return len(src) >= 1 and dst == (src[0], math.prod(src[1:]))
