"""QMaxPool: maximum over 2-D windows; the exponent is unchanged (max commutes with scaling).

Input ``x`` [N, C, H, W]. Attributes: ``kernel_shape`` (kh, kw), ``strides``, ``pads`` (top,
left, bottom, right), ``dilations``, ``ceil_mode`` (0/1); window rules in `window`.

Semantics: ``y[n, c, i, j] = max`` of the input elements in the window; padding never wins (a
window always holds at least one input element).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import Bounds, IntOpDef, make_cost, output_elements, register
from .window import torch_pads


@register
class QMaxPool(IntOpDef):
    name = "QMaxPool"

    def simulate(self, node, inputs):
        a = node.attrs
        x = torch.from_numpy(inputs[0].astype(np.float64))
        pads = torch_pads(tuple(x.shape[-2:]), a)
        if any(pads):
            x = F.pad(x, pads, value=float("-inf"))
        y = F.max_pool2d(x, tuple(a["kernel_shape"]), tuple(a["strides"]), 0, tuple(a["dilations"]))
        return [y.numpy().astype(np.int64)]

    def bounds(self, node, graph, in_ranges):
        return Bounds([in_ranges[0]])

    def cost(self, node, graph):
        """adds: ``kh*kw - 1`` compares per output element."""
        kh, kw = node.attrs["kernel_shape"]
        return make_cost(output_elements(node, graph) * (kh * kw - 1))
