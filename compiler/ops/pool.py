"""2-D pooling: MaxPool, AveragePool, GlobalAveragePool, with ONNX's exact window rules.

torch's pooling only takes symmetric padding and counts padding differently, so both windowed
pools pad explicitly and pool without padding. The output length along an axis follows
onnxruntime: ``floor`` (or ``ceil`` when ``ceil_mode``) of
``(size + pad_begin + pad_end - span) / stride + 1`` with ``span = dilation * (kernel - 1) + 1``;
in ceil mode a last window that would start inside the end padding is dropped. A ceil-mode
window that runs past the end padding is clipped: it sees no values there and does not count
them in an average.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import OpDef, register


def axis_windows(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int, ceil_mode: int) -> tuple[int, int]:
    """Output length along one axis, and the extra end padding a ceil-mode last window needs
    (ONNX/onnxruntime's rule: a last window starting in the end padding is dropped). The integer
    pools use the same geometry (`pqc.intops.window`)."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_begin + pad_end
    if padded < span:
        raise ValueError(f"window of {span} does not fit the padded length {padded}")
    if ceil_mode:
        out = -(-(padded - span) // stride) + 1
        if (out - 1) * stride >= size + pad_begin:
            out -= 1
    else:
        out = (padded - span) // stride + 1
    return out, max(0, (out - 1) * stride + span - padded)


def _exported_pads(node, graph) -> list[int]:
    """The pads to export (top, left, bottom, right). ONNX shape inference before opset 22 lacks
    the ceil-mode rule that drops a last window starting in the end padding, which onnxruntime
    applies; trimming such an axis's end pad to where its last window ends gives the same windows
    under both rules. (When that window ends inside the input, no trim helps and the pads stay.)"""
    a = node.attrs
    height, width = graph.values[node.inputs[0]].shape[-2:]
    dilations = a.get("dilations", (1, 1))
    pads = list(a["pads"])
    for axis, size in enumerate((height, width)):
        kernel, stride, begin, end = a["kernel_shape"][axis], a["strides"][axis], pads[axis], pads[axis + 2]
        span = dilations[axis] * (kernel - 1) + 1
        out, _ = axis_windows(size, kernel, stride, dilations[axis], begin, end, a["ceil_mode"])
        legacy_out = -(-(size + begin + end - span) // stride) + 1 if a["ceil_mode"] else out
        trimmed = (out - 1) * stride + span - size - begin
        if legacy_out != out and trimmed >= 0:
            pads[axis + 2] = trimmed
    return pads


def _pool_to_onnx(node, ctx) -> list:
    from onnx import helper

    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in node.attrs.items()}
    attrs["pads"] = _exported_pads(node, ctx.graph)
    return [helper.make_node(node.op, node.inputs, node.outputs, name=node.name, **attrs)]


def _window_padding(x: torch.Tensor, attrs: dict) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The explicit pads as ``F.pad`` widths (left, right, top, bottom) and the ceil-mode extra (h, w)."""
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
    dh, dw = attrs.get("dilations", (1, 1))
    t, l, b, r = attrs["pads"]
    ceil = attrs["ceil_mode"]
    _, extra_h = axis_windows(x.shape[-2], kh, sh, dh, t, b, ceil)
    _, extra_w = axis_windows(x.shape[-1], kw, sw, dw, l, r, ceil)
    return (l, r, t, b), (extra_h, extra_w)


@register
class MaxPool(OpDef):
    """Max over 2-D windows; padding never wins (it is -inf).

    Attributes: ``kernel_shape`` (kh, kw), ``strides``, ``pads`` (top, left, bottom, right),
    ``dilations``, ``ceil_mode`` (0/1). Only the first (values) output of ONNX MaxPool exists.
    """

    name = "MaxPool"

    def forward(self, node, inputs):
        x, a = inputs[0], node.attrs
        (l, r, t, b), (eh, ew) = _window_padding(x, a)
        if any((l, r + ew, t, b + eh)):
            x = F.pad(x, (l, r + ew, t, b + eh), value=float("-inf"))
        return [F.max_pool2d(x, tuple(a["kernel_shape"]), tuple(a["strides"]), 0, tuple(a["dilations"]))]

    def to_onnx(self, node, ctx):
        return _pool_to_onnx(node, ctx)


@register
class AveragePool(OpDef):
    """Mean over 2-D windows.

    Attributes: ``kernel_shape`` (kh, kw), ``strides``, ``pads`` (top, left, bottom, right),
    ``ceil_mode`` (0/1), ``count_include_pad`` (0: divide by the number of input elements in
    the window; 1: also count the explicit padding, but never the part of a ceil-mode window
    beyond it). No dilations.
    """

    name = "AveragePool"

    def forward(self, node, inputs):
        x, a = inputs[0], node.attrs
        (l, r, t, b), (eh, ew) = _window_padding(x, a)
        kernel, strides = tuple(a["kernel_shape"]), tuple(a["strides"])
        sums = F.avg_pool2d(F.pad(x, (l, r + ew, t, b + eh)), kernel, strides, 0, divisor_override=1)
        ones = torch.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype, device=x.device)
        if a["count_include_pad"]:
            mask = F.pad(F.pad(ones, (l, r, t, b), value=1.0), (0, ew, 0, eh))
        else:
            mask = F.pad(ones, (l, r + ew, t, b + eh))
        counts = F.avg_pool2d(mask, kernel, strides, 0, divisor_override=1)
        return [sums / counts]

    def to_onnx(self, node, ctx):
        return _pool_to_onnx(node, ctx)


@register
class GlobalAveragePool(OpDef):
    """Mean over all spatial dims (2 and up), keeping them as size 1. No attributes."""

    name = "GlobalAveragePool"

    def forward(self, node, inputs):
        x = inputs[0]
        return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]
