"""Softmax, in both ONNX flavours (the exporter targets opset >= 13)."""
from __future__ import annotations

import math

import torch

from . import OpDef, register


@register
class Softmax(OpDef):
    """Softmax along ``axis`` (non-negative).

    ``coerce_2d`` (bool) keeps the opset < 13 meaning: the input is viewed as 2-D
    ``(prod(shape[:axis]), prod(shape[axis:]))``, normalized over its second dim, and reshaped
    back. At opset >= 13 that is exported as Flatten -> Softmax(axis=1) -> Reshape(Shape(x)),
    or as a plain Softmax when ``axis`` is the last dim (the two meanings then coincide).
    """

    name = "Softmax"

    def forward(self, node, inputs):
        x, axis = inputs[0], node.attrs["axis"]
        if not node.attrs["coerce_2d"]:
            return [torch.softmax(x, dim=axis)]
        flat = x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
        return [torch.softmax(flat, dim=1).reshape(x.shape)]

    def to_onnx(self, node, ctx):
        from onnx import helper

        axis, rank = node.attrs["axis"], len(ctx.graph.values[node.inputs[0]].shape)
        if not node.attrs["coerce_2d"] or axis == rank - 1:
            return [helper.make_node("Softmax", node.inputs[:1], node.outputs, name=node.name, axis=axis)]
        x, y = node.inputs[0], node.outputs[0]
        flat, soft, shape = (ctx.fresh(f"{y}_{part}") for part in ("flat", "softmax2d", "shape"))
        return [
            helper.make_node("Flatten", [x], [flat], name=ctx.fresh(f"{node.name}_flatten"), axis=axis),
            helper.make_node("Softmax", [flat], [soft], name=node.name, axis=1),
            helper.make_node("Shape", [x], [shape], name=ctx.fresh(f"{node.name}_shape")),
            helper.make_node("Reshape", [soft, shape], [y], name=ctx.fresh(f"{node.name}_reshape")),
        ]
