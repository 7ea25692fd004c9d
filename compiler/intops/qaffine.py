"""QAffine: per-channel ``x * m[c] + b[c]`` requantized (standalone BN, Mul/Add by a constant).

Inputs: ``x`` [N, C, ...], ``m`` int32 constant [C], ``b`` int32 constant [C] (channel axis 1).
Attributes: ``shift`` (tuple, one per C), ``lo``, ``hi``.

Semantics: ``acc = x * m[c] + b[c]`` (exact int32, ``m`` applied as shift-adds of its NAF
digits); ``y = clamp(rshift_round(acc, shift[c]), lo, hi)``.
"""
from __future__ import annotations

import numpy as np

from ..intmath import channel_vector, naf_count, naf_magnitude, requantize
from . import Bounds, IntOpDef, abs_max, make_cost, output_elements, register, requant_bounds


@register
class QAffine(IntOpDef):
    name = "QAffine"
    in_place = True

    def simulate(self, node, inputs):
        x, m, b = (v.astype(np.int64) for v in inputs)
        acc = x * channel_vector(m, x.ndim) + channel_vector(b, x.ndim)
        return [requantize(acc, node.attrs["shift"], node.attrs["lo"], node.attrs["hi"])]

    def bounds(self, node, graph, in_ranges):
        x_lo, x_hi = in_ranges[0]
        m = graph.values[node.inputs[1]].data.astype(np.int64)
        b = graph.values[node.inputs[2]].data.astype(np.int64)
        mags = naf_magnitude(m)
        accs, partial = [], 0
        for mc, bc, mag in zip(m.tolist(), b.tolist(), mags.tolist()):
            ends = (x_lo * mc, x_hi * mc)
            accs.append((min(ends) + bc, max(ends) + bc))
            partial = max(partial, abs_max((x_lo, x_hi)) * mag + abs(bc))
        out, inter = requant_bounds(accs, node.attrs["shift"], node.attrs["lo"], node.attrs["hi"])
        acc_all = (min(a[0] for a in accs), max(a[1] for a in accs))
        return Bounds([out], {"acc": acc_all, "shift_add": (-partial, partial), **inter})

    def cost(self, node, graph):
        """Per element of channel ``c``: ``m[c]``'s NAF digits as adds and shifts, the bias add,
        and when ``shift[c]`` is nonzero one shift (plus a rounding add when positive)."""
        m = graph.values[node.inputs[1]].data
        per_c = output_elements(node, graph) // len(m)
        digits = naf_count(m)
        shift = np.broadcast_to(np.asarray(node.attrs["shift"]), m.shape)
        adds = int((digits + 1 + (shift > 0)).sum()) * per_c
        shifts = int((digits + (shift != 0)).sum()) * per_c
        return make_cost(adds, shifts, 8 * m.size, digits.sum())
