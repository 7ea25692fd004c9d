"""QGlobalAvgPool: mean over all spatial positions as a sum times a shift-add reciprocal.

Input ``x`` [N, C, H, W]; output [N, C, 1, 1]. Attributes: ``m``, ``k`` (``m / 2^k ~ 1 / (H*W)``,
see `intmath.reciprocal`), ``shift_base`` (``e_y - e_x``), ``lo``, ``hi``.

Semantics: ``s = sum`` over H and W, ``y = clamp(rshift_round(s * m, k + shift_base), lo, hi)``;
``m`` is applied as shift-adds of its NAF digits.
"""
from __future__ import annotations

import numpy as np

from ..intmath import naf_count, rshift_round
from . import IntOpDef, make_cost, output_elements, register
from .qavgpool import scaled_sum_bounds


@register
class QGlobalAvgPool(IntOpDef):
    name = "QGlobalAvgPool"

    def simulate(self, node, inputs):
        a = node.attrs
        s = inputs[0].astype(np.int64).sum(axis=(2, 3), keepdims=True)
        return [np.clip(rshift_round(s * a["m"], a["k"] + a["shift_base"]), a["lo"], a["hi"])]

    def bounds(self, node, graph, in_ranges):
        a = node.attrs
        h, w = graph.values[node.inputs[0]].shape[2:]
        return scaled_sum_bounds(in_ranges[0], [(h * w, a["m"], a["k"])], a["shift_base"], a["lo"], a["hi"])

    def cost(self, node, graph):
        """Per output element: ``H*W - 1`` adds for the sum, the multiplier's NAF digits as adds
        and shifts, one rounding add and one shift."""
        h, w = graph.values[node.inputs[0]].shape[2:]
        digits = int(naf_count(node.attrs["m"]))
        e = output_elements(node, graph)
        return make_cost(e * (h * w - 1 + digits + 1), e * (digits + 1), 0, digits)
