"""QAvgPool: window sum times a shift-add reciprocal of the window's divisor.

Input ``x`` [N, C, H, W]. Attributes: ``kernel_shape`` (kh, kw), ``strides``, ``pads`` (top,
left, bottom, right), ``ceil_mode``, ``count_include_pad`` (window and divisor rules in
`window`: `window.avg_divisors` gives each output position's divisor ``d``), ``recip`` (tuple
of ``(d, m, k)``, one per distinct divisor, ``m / 2^k ~ 1 / d``, see `intmath.reciprocal`),
``shift_base`` (``e_y - e_x``), ``lo``, ``hi``.

Semantics: ``s = sum`` of the window (padding adds 0), ``(m, k)`` the entry of that position's
divisor, ``y = clamp(rshift_round(s * m, k + shift_base), lo, hi)``; ``m`` is applied as
shift-adds of its NAF digits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..intmath import naf_count, naf_magnitude, rshift_round
from . import Bounds, Interval, IntOpDef, abs_max, make_cost, output_elements, register, requant_bounds
from .window import avg_divisors, torch_pads


def scaled_sum_bounds(in_range: Interval, recip: Sequence[tuple[int, int, int]], shift_base: int, lo: int,
                      hi: int) -> Bounds:
    """Bounds of ``clamp(rshift_round(sum * m, k + shift_base), lo, hi)`` where each ``(d, m, k)``
    of ``recip`` scales a sum of at most ``d`` inputs and zeros (shared with QGlobalAvgPool)."""
    x_lo, x_hi = min(in_range[0], 0), max(in_range[1], 0)
    sums, accs, shifts, partial = [], [], [], 0
    for d, m, k in recip:
        s = (d * x_lo, d * x_hi)
        sums.append(s)
        accs.append((s[0] * m, s[1] * m))
        shifts.append(k + shift_base)
        partial = max(partial, abs_max(s) * int(naf_magnitude(m)))
    out, inter = requant_bounds(accs, shifts, lo, hi)
    return Bounds([out], {
        "sum": (min(s[0] for s in sums), max(s[1] for s in sums)),
        "acc": (min(a[0] for a in accs), max(a[1] for a in accs)),
        "shift_add": (-partial, partial),
        **inter,
    })


@register
class QAvgPool(IntOpDef):
    name = "QAvgPool"

    def simulate(self, node, inputs):
        a = node.attrs
        x = torch.from_numpy(inputs[0].astype(np.float64))
        in_hw = tuple(x.shape[-2:])
        sums = F.avg_pool2d(F.pad(x, torch_pads(in_hw, a)), tuple(a["kernel_shape"]), tuple(a["strides"]), 0,
                            divisor_override=1).numpy().astype(np.int64)
        table = {d: (m, k) for d, m, k in a["recip"]}
        divisors = avg_divisors(in_hw, a)
        m = np.vectorize(lambda d: table[d][0], otypes=[np.int64])(divisors)
        k = np.vectorize(lambda d: table[d][1], otypes=[np.int64])(divisors)
        y = rshift_round(sums * m, k + a["shift_base"])
        return [np.clip(y, a["lo"], a["hi"])]

    def bounds(self, node, graph, in_ranges):
        a = node.attrs
        return scaled_sum_bounds(in_ranges[0], a["recip"], a["shift_base"], a["lo"], a["hi"])

    def cost(self, node, graph):
        """Per output element: ``kh*kw - 1`` adds for the sum (the ideal count), the
        multiplier's NAF digits as adds (an upper bound for divisors that differ) and shifts,
        one rounding add and one shift."""
        a = node.attrs
        kh, kw = a["kernel_shape"]
        counts = [int(naf_count(m)) for _, m, _ in a["recip"]]
        e, digits = output_elements(node, graph), max(counts)
        return make_cost(e * (kh * kw - 1 + digits + 1), e * (digits + 1), 0, sum(counts))
