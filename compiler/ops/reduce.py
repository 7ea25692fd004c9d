"""Reductions over given axes: ReduceMean (global pooling written as a reduction), ReduceSum and
ReduceMax. One definition, three torch reducers, because the ops differ only in that."""
from __future__ import annotations

import numpy as np
import torch

from . import OpDef, register


class _Reduce(OpDef):
    """Reduce over ``axes`` (tuple of non-negative ints; empty means every axis, as in ONNX when
    the axes operand is omitted); ``keepdims`` (0/1) keeps the reduced axes as size 1.

    ONNX takes ``axes`` as an attribute before ``axes_input_opset`` and as a constant input
    from then on; the exporter emits whichever the target opset wants, always listing the axes.
    """

    axes_input_opset: int = 18

    def reduce(self, x: torch.Tensor, axes: tuple[int, ...], keepdim: bool) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, node, inputs):
        x = inputs[0]
        axes = tuple(node.attrs["axes"]) or tuple(range(x.dim()))
        return [self.reduce(x, axes, bool(node.attrs["keepdims"]))]

    def to_onnx(self, node, ctx):
        from onnx import helper

        axes = list(node.attrs["axes"]) or list(range(len(ctx.graph.values[node.inputs[0]].shape)))
        keepdims = int(node.attrs["keepdims"])
        if ctx.opset < self.axes_input_opset:
            return [helper.make_node(self.name, node.inputs[:1], node.outputs, name=node.name, axes=axes, keepdims=keepdims)]
        axes_name = ctx.constant(f"{node.name}_axes", np.array(axes, np.int64))
        return [helper.make_node(self.name, [node.inputs[0], axes_name], node.outputs, name=node.name, keepdims=keepdims)]


@register
class ReduceMean(_Reduce):
    name = "ReduceMean"

    def reduce(self, x, axes, keepdim):
        return x.mean(dim=axes, keepdim=keepdim)


@register
class ReduceSum(_Reduce):
    name = "ReduceSum"
    axes_input_opset = 13

    def reduce(self, x, axes, keepdim):
        return x.sum(dim=axes, keepdim=keepdim)


@register
class ReduceMax(_Reduce):
    name = "ReduceMax"

    def reduce(self, x, axes, keepdim):
        return torch.amax(x, dim=axes, keepdim=keepdim)
