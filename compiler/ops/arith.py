"""Binary arithmetic with numpy broadcasting: Add, Sub, Mul, Div.

Add and Sub take two operands, either of which may be a constant (a learnable Parameter in the
executor). Div takes an activation ``x`` first and a constant ``c`` second; Mul takes an
activation first and a constant or another activation second (the frontend swaps a
constant-first Mul). Only Add carries a fused ``act`` (a residual add
followed by ReLU is the common case canonicalization fuses).
"""
from __future__ import annotations

import torch

from . import OpDef, register
from .activation import apply_act, export_act


@register
class Add(OpDef):
    """``a + b``, then the optional fused activation ``act``."""

    name = "Add"

    def forward(self, node, inputs):
        return [apply_act(inputs[0] + inputs[1], node.attrs.get("act"))]

    def to_onnx(self, node, ctx):
        from onnx import helper

        out, extra = export_act(node, ctx)
        return [helper.make_node("Add", node.inputs, [out], name=node.name)] + extra


@register
class Sub(OpDef):
    """``a - b``. No attributes."""

    name = "Sub"

    def forward(self, node, inputs):
        return [inputs[0] - inputs[1]]


@register
class Mul(OpDef):
    """``a * b`` with numpy broadcasting: an activation times a constant (normalized to the second
    operand), or two activations (a squeeze-excite gate), which lowering refuses. No attributes."""

    name = "Mul"

    def forward(self, node, inputs):
        return [inputs[0] * inputs[1]]


@register
class Div(OpDef):
    """``x / c`` with ``c`` constant (true float division). No attributes."""

    name = "Div"

    def forward(self, node, inputs):
        return [torch.div(inputs[0], inputs[1])]
