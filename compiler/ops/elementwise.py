"""Unary elementwise activations: Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid.

Each computes exactly the ONNX formula (not torch's nearest built-in where the two differ in
rounding), so the executor agrees with onnxruntime to float32 precision.
"""
from __future__ import annotations

import numpy as np
import torch

from . import OpDef, register


@register
class Relu(OpDef):
    """``max(x, 0)``. No attributes."""

    name = "Relu"

    def forward(self, node, inputs):
        return [torch.relu(inputs[0])]


@register
class Clip(OpDef):
    """``min(max(x, min), max)``.

    Attributes ``min`` and ``max`` are floats or None (that side unbounded); ONNX takes them as
    optional constant inputs, so the exporter re-emits them as scalar initializers.
    """

    name = "Clip"

    def forward(self, node, inputs):
        lo, hi = node.attrs.get("min"), node.attrs.get("max")
        if lo is None and hi is None:
            return [inputs[0]]
        return [torch.clamp(inputs[0], lo, hi)]

    def to_onnx(self, node, ctx):
        from onnx import helper

        bounds = []
        for side in ("min", "max"):
            bound = node.attrs.get(side)
            bounds.append("" if bound is None else ctx.constant(f"{node.name}_{side}", np.array(bound, np.float32)))
        while bounds and not bounds[-1]:
            bounds.pop()
        return [helper.make_node("Clip", [node.inputs[0], *bounds], node.outputs, name=node.name)]


@register
class LeakyRelu(OpDef):
    """``x if x >= 0 else alpha * x``. Attribute ``alpha`` (float)."""

    name = "LeakyRelu"

    def forward(self, node, inputs):
        return [torch.nn.functional.leaky_relu(inputs[0], node.attrs["alpha"])]


@register
class HardSigmoid(OpDef):
    """``max(0, min(1, alpha * x + beta))``. Attributes ``alpha`` and ``beta`` (floats)."""

    name = "HardSigmoid"

    def forward(self, node, inputs):
        return [torch.clamp(inputs[0] * node.attrs["alpha"] + node.attrs["beta"], 0.0, 1.0)]


@register
class HardSwish(OpDef):
    """``x * max(0, min(1, x / 6 + 0.5))`` (ONNX's HardSigmoid with alpha 1/6, beta 0.5). No attributes.

    ONNX has HardSwish from opset 14; below that it is exported as ``Mul(x, HardSigmoid(x))``.
    """

    name = "HardSwish"

    def forward(self, node, inputs):
        x = inputs[0]
        return [x * torch.clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)]

    def to_onnx(self, node, ctx):
        from onnx import helper

        if ctx.opset >= 14:
            return super().to_onnx(node, ctx)
        gate = ctx.fresh(f"{node.outputs[0]}_gate")
        return [
            helper.make_node("HardSigmoid", node.inputs, [gate], name=ctx.fresh(f"{node.name}_gate"), alpha=1.0 / 6.0, beta=0.5),
            helper.make_node("Mul", [node.inputs[0], gate], node.outputs, name=node.name),
        ]


@register
class Sigmoid(OpDef):
    """``1 / (1 + exp(-x))``. No attributes."""

    name = "Sigmoid"

    def forward(self, node, inputs):
        return [torch.sigmoid(inputs[0])]
