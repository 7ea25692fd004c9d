"""ReduceMean: the mean over given axes (global pooling written as a reduction)."""
from __future__ import annotations

import numpy as np

from . import OpDef, register


@register
class ReduceMean(OpDef):
    """Mean over ``axes`` (tuple of non-negative ints; empty means every axis, as in ONNX when
    the axes operand is omitted); ``keepdims`` (0/1) keeps the reduced axes as size 1.

    ONNX takes ``axes`` as an attribute before opset 18 and as a constant input from 18 on; the
    exporter emits whichever the target opset wants, always listing the axes explicitly.
    """

    name = "ReduceMean"

    def forward(self, node, inputs):
        x = inputs[0]
        axes = tuple(node.attrs["axes"]) or tuple(range(x.dim()))
        return [x.mean(dim=axes, keepdim=bool(node.attrs["keepdims"]))]

    def to_onnx(self, node, ctx):
        from onnx import helper

        axes = list(node.attrs["axes"]) or list(range(len(ctx.graph.values[node.inputs[0]].shape)))
        keepdims = int(node.attrs["keepdims"])
        if ctx.opset < 18:
            return [helper.make_node("ReduceMean", node.inputs[:1], node.outputs, name=node.name, axes=axes, keepdims=keepdims)]
        axes_name = ctx.constant(f"{node.name}_axes", np.array(axes, np.int64))
        return [helper.make_node("ReduceMean", [node.inputs[0], axes_name], node.outputs, name=node.name, keepdims=keepdims)]
