"""Conv: 2-D convolution with optional bias and an optional fused activation.

IR attributes (always explicit after import): ``kernel_shape`` (kh, kw), ``strides``,
``dilations``, ``pads`` (top, left, bottom, right), ``group``; ``act`` (see `activation`).
Only 2-D convolution is supported; the frontend refuses other ranks.
"""
from __future__ import annotations

import torch.nn.functional as F

from . import OpDef, register
from .activation import apply_act, export_act


@register
class Conv(OpDef):
    name = "Conv"

    def forward(self, node, inputs):
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        a = node.attrs
        if tuple(w.shape[2:]) != tuple(a["kernel_shape"]):
            raise ValueError(f"weight shape {tuple(w.shape)} does not match kernel_shape {tuple(a['kernel_shape'])}")
        t, l, bo, r = a["pads"]
        if (t, l) == (bo, r):
            y = F.conv2d(x, w, b, tuple(a["strides"]), (t, l), tuple(a["dilations"]), a["group"])
        else:
            y = F.conv2d(F.pad(x, (l, r, t, bo)), w, b, tuple(a["strides"]), 0, tuple(a["dilations"]), a["group"])
        return [apply_act(y, a.get("act"))]

    def to_onnx(self, node, ctx):
        from onnx import helper

        a = node.attrs
        out, extra = export_act(node, ctx)
        conv = helper.make_node(
            "Conv", node.inputs, [out], name=node.name, kernel_shape=list(a["kernel_shape"]),
            strides=list(a["strides"]), dilations=list(a["dilations"]), pads=list(a["pads"]), group=a["group"],
        )
        return [conv] + extra

    def macs(self, node, graph):
        w = graph.values[node.inputs[1]].shape  # (Cout, Cin/group, kh, kw)
        out = graph.values[node.outputs[0]].shape
        return int(out[0] * out[1] * out[2] * out[3] * w[1] * w[2] * w[3])
