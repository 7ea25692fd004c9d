"""LRN: local response normalization across channels (AlexNet, GoogLeNet, ZFNet)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import OpDef, register


@register
class LRN(OpDef):
    """``y = x / (bias + alpha / size * sum of x^2 over a window of channels) ^ beta``, the window
    of channel c being ``[c - floor((size-1)/2), c + ceil((size-1)/2)]`` (ONNX's; torch's
    local_response_norm centres even windows the other way). Attributes ``size`` (int),
    ``alpha``, ``beta``, ``bias`` (floats). Input (N, C, ...)."""

    name = "LRN"

    def forward(self, node, inputs):
        x, size = inputs[0], node.attrs["size"]
        n, c = x.shape[0], x.shape[1]
        squares = (x * x).reshape(n, 1, c, -1)
        squares = F.pad(squares, (0, 0, (size - 1) // 2, size // 2))
        window_mean = F.avg_pool2d(squares, (size, 1), stride=1).reshape(x.shape)
        return [x / torch.pow(node.attrs["bias"] + node.attrs["alpha"] * window_mean, node.attrs["beta"])]
