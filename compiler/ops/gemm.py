"""Dense layers: Gemm (the classifier head) and MatMul (numpy matmul with one constant operand)."""
from __future__ import annotations

import math

import torch

from . import OpDef, register
from .activation import apply_act, export_act


@register
class Gemm(OpDef):
    """``act(alpha * A' @ B' + beta * C)`` with ``A' = A.T if transA``, ``B' = B.T if transB``.

    Inputs: ``a`` (M, K) activation (rows are the batch), ``b`` constant, optional ``c``
    constant broadcast to (M, N). Attributes: ``alpha``, ``beta`` (floats), ``transA``,
    ``transB`` (0/1), optional fused ``act``.
    """

    name = "Gemm"

    def forward(self, node, inputs):
        a, b = inputs[0], inputs[1]
        c = inputs[2] if len(inputs) > 2 else None
        attrs = node.attrs
        a = a.t() if attrs["transA"] else a
        b = b.t() if attrs["transB"] else b
        y = a @ b
        if attrs["alpha"] != 1.0:
            y = y * attrs["alpha"]
        if c is not None:
            y = y + (c if attrs["beta"] == 1.0 else c * attrs["beta"])
        return [apply_act(y, attrs.get("act"))]

    def to_onnx(self, node, ctx):
        from onnx import helper

        a = node.attrs
        out, extra = export_act(node, ctx)
        gemm = helper.make_node(
            "Gemm", node.inputs, [out], name=node.name,
            alpha=float(a["alpha"]), beta=float(a["beta"]), transA=int(a["transA"]), transB=int(a["transB"]),
        )
        return [gemm] + extra

    def macs(self, node, graph):
        m, n = graph.values[node.outputs[0]].shape
        a_shape = graph.values[node.inputs[0]].shape
        k = a_shape[0] if node.attrs["transA"] else a_shape[1]
        return int(m * n * k)


@register
class MatMul(OpDef):
    """numpy ``matmul(a, b)`` (batched, broadcasting); exactly one operand is constant. No attributes."""

    name = "MatMul"

    def forward(self, node, inputs):
        return [torch.matmul(inputs[0], inputs[1])]

    def macs(self, node, graph):
        a_shape = graph.values[node.inputs[0]].shape
        k = a_shape[-1] if len(a_shape) > 1 else a_shape[0]
        return int(math.prod(graph.values[node.outputs[0]].shape) * k)
