"""QAdd: elementwise sum (or difference) of two activations at different exponents.

Inputs: ``a``, ``b`` (same shape). Attributes: ``shift_a``, ``shift_b`` (left shifts >= 0
aligning both operands to the finer of their exponents), ``shift`` (the output rounding shift,
``e_y - min(e_a, e_b)``), ``lo``, ``hi``, ``negate_b`` (bool: ``a - b``, an ONNX Sub).

Semantics: ``acc = (a << shift_a) + (b << shift_b)`` (``-`` when ``negate_b``), exact int32;
``y = clamp(rshift_round(acc, shift), lo, hi)``.
"""
from __future__ import annotations

import numpy as np

from ..intmath import requantize
from . import Bounds, IntOpDef, make_cost, output_elements, register, requant_bounds


@register
class QAdd(IntOpDef):
    name = "QAdd"
    in_place = True

    def simulate(self, node, inputs):
        a_ = node.attrs
        a = inputs[0].astype(np.int64) << a_["shift_a"]
        b = inputs[1].astype(np.int64) << a_["shift_b"]
        acc = np.subtract(a, b, out=a) if a_["negate_b"] else np.add(a, b, out=a)
        return [requantize(acc, a_["shift"], a_["lo"], a_["hi"])]

    def bounds(self, node, graph, in_ranges):
        a_ = node.attrs
        (al, ah), (bl, bh) = in_ranges
        al, ah = al << a_["shift_a"], ah << a_["shift_a"]
        bl, bh = bl << a_["shift_b"], bh << a_["shift_b"]
        if a_["negate_b"]:
            bl, bh = -bh, -bl
        acc = (al + bl, ah + bh)
        out, inter = requant_bounds([acc], [a_["shift"]], a_["lo"], a_["hi"])
        return Bounds([out], {"aligned_a": (al, ah), "aligned_b": (bl, bh), "acc": acc, **inter})

    def cost(self, node, graph):
        """adds: the sum and, when ``shift > 0``, the rounding add, per element; shifts: one per
        nonzero shift among ``shift_a``, ``shift_b``, ``shift`` per element."""
        a_ = node.attrs
        e = output_elements(node, graph)
        shifts = sum(1 for s in (a_["shift_a"], a_["shift_b"], a_["shift"]) if s != 0)
        return make_cost(e * (1 + (a_["shift"] > 0)), e * shifts)
