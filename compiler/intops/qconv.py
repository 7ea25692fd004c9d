"""QConv: integer 2-D convolution with per-channel requantization.

Inputs: ``x`` [N, Cin, H, W] (int8/uint8), ``w`` int8 constant [Cout, Cin/group, kh, kw],
``b`` int32 constant [Cout].
Attributes: ``kernel_shape`` (kh, kw), ``strides``, ``pads`` (top, left, bottom, right),
``dilations``, ``group``, ``shift`` (tuple, one per Cout), ``lo``, ``hi``.

Semantics: ``acc[n, c, i, j] = b[c] + sum x * w[c]`` over the window with zero padding (exact,
proven int32 by range analysis); ``y = clamp(rshift_round(acc, shift[c]), lo, hi)``. A shift
``<= 0`` is a left shift (exact; the last layer keeps int32 precision that way).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import register
from .linear import LinearOpDef, exact_dtype, per_channel_elements


@register
class QConv(LinearOpDef):
    name = "QConv"
    pads_with_zero = True

    def accumulate(self, node, x, w):
        a = node.attrs
        t, l, b, r = a["pads"]
        dtype = exact_dtype(x, w)
        xt = torch.from_numpy(np.asarray(x)).to(dtype)
        padding = (t, l) if (t, l) == (b, r) else 0
        if (t, l) != (b, r):
            xt = F.pad(xt, (l, r, t, b))
        with torch.backends.nnpack.flags(enabled=False):  # NNPACK may use Winograd: not exact
            y = F.conv2d(xt, torch.from_numpy(np.asarray(w)).to(dtype), None, tuple(a["strides"]), padding,
                         tuple(a["dilations"]), a["group"])
        return y.numpy().astype(np.int64)

    def positions(self, node, graph):
        return per_channel_elements(node, graph)
