"""Data-movement ops: Flatten, Reshape, Squeeze, Unsqueeze, Concat, Pad, Identity, Dropout.

Shape operands that ONNX passes as constant inputs (Reshape's shape, Squeeze/Unsqueeze axes,
Pad's widths and value) are IR attributes; their ``to_onnx`` re-emits them as initializers.
Every forward reads the runtime batch size from its input, so a graph imported with a symbolic
batch runs at any batch size.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import OpDef, register


@register
class Flatten(OpDef):
    """Reshape to 2-D: ``(prod(shape[:axis]), prod(shape[axis:]))``. Attribute ``axis`` (non-negative)."""

    name = "Flatten"

    def forward(self, node, inputs):
        x, axis = inputs[0], node.attrs["axis"]
        return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


@register
class Reshape(OpDef):
    """Reshape to the static ``shape`` (full output shape, no -1 or 0).

    ``keep_batch`` (bool): input and output share dim 0, so a run at batch N produces
    ``(N,) + shape[1:]``; exported as ONNX's 0 ("copy this dim") in the batch position.
    """

    name = "Reshape"

    def forward(self, node, inputs):
        x, shape = inputs[0], tuple(node.attrs["shape"])
        if node.attrs["keep_batch"]:
            shape = (x.shape[0],) + shape[1:]
        return [x.reshape(shape)]

    def to_onnx(self, node, ctx):
        from onnx import helper

        shape = list(node.attrs["shape"])
        if node.attrs["keep_batch"]:
            shape[0] = 0
        shape_name = ctx.constant(f"{node.name}_shape", np.array(shape, np.int64))
        return [helper.make_node("Reshape", [node.inputs[0], shape_name], node.outputs, name=node.name)]


def _axes_operand_node(op: str, node, ctx) -> list:
    """Squeeze/Unsqueeze with their ``axes`` attribute exported as the opset-13 axes input."""
    from onnx import helper

    if not node.attrs["axes"]:
        return [helper.make_node("Identity", node.inputs[:1], node.outputs, name=node.name)]
    axes_name = ctx.constant(f"{node.name}_axes", np.array(node.attrs["axes"], np.int64))
    return [helper.make_node(op, [node.inputs[0], axes_name], node.outputs, name=node.name)]


@register
class Squeeze(OpDef):
    """Remove the size-1 dims at ``axes`` (non-negative, relative to the input rank).

    The axes are always explicit (the frontend resolves an omitted ONNX axes operand to the
    static size-1 dims); an empty tuple is a no-op. Squeezing a dim that is not 1 is an error.
    """

    name = "Squeeze"

    def forward(self, node, inputs):
        x, axes = inputs[0], tuple(node.attrs["axes"])
        wrong = [a for a in axes if a >= x.dim() or x.shape[a] != 1]
        if wrong:
            raise ValueError(f"cannot squeeze axes {wrong} of shape {tuple(x.shape)}")
        return [x.squeeze(axes) if axes else x]

    def to_onnx(self, node, ctx):
        return _axes_operand_node("Squeeze", node, ctx)


@register
class Unsqueeze(OpDef):
    """Insert size-1 dims at ``axes`` (non-negative, relative to the output rank)."""

    name = "Unsqueeze"

    def forward(self, node, inputs):
        x = inputs[0]
        for axis in sorted(node.attrs["axes"]):
            x = x.unsqueeze(axis)
        return [x]

    def to_onnx(self, node, ctx):
        return _axes_operand_node("Unsqueeze", node, ctx)


@register
class Concat(OpDef):
    """Concatenate all inputs along ``axis`` (non-negative)."""

    name = "Concat"

    def forward(self, node, inputs):
        return [torch.cat(list(inputs), dim=node.attrs["axis"])]


@register
class Pad(OpDef):
    """Constant padding. ``pads``: ONNX order, the begin widths of every axis then the end
    widths; a negative width crops. ``value`` (float): the fill. Only constant mode exists."""

    name = "Pad"

    def forward(self, node, inputs):
        x, pads = inputs[0], node.attrs["pads"]
        rank = x.dim()
        if len(pads) != 2 * rank:
            raise ValueError(f"pads {tuple(pads)} need {2 * rank} entries for a rank-{rank} input")
        widths = [w for axis in reversed(range(rank)) for w in (pads[axis], pads[axis + rank])]
        return [F.pad(x, widths, value=float(node.attrs["value"]))]

    def to_onnx(self, node, ctx):
        from onnx import helper

        pads = ctx.constant(f"{node.name}_pads", np.array(node.attrs["pads"], np.int64))
        value = ctx.constant(f"{node.name}_value", np.array(node.attrs["value"], np.float32))
        return [helper.make_node("Pad", [node.inputs[0], pads, value], node.outputs, name=node.name, mode="constant")]


@register
class Identity(OpDef):
    """The input unchanged. No attributes."""

    name = "Identity"

    def forward(self, node, inputs):
        return [inputs[0]]


@register
class Dropout(OpDef):
    """Inference dropout: the input unchanged, in training mode too (pqc never trains with
    dropout; canonicalization removes it). Only the data output exists. No attributes."""

    name = "Dropout"

    def forward(self, node, inputs):
        return [inputs[0]]
