"""QConcat: concatenation of activations requantized to one output exponent.

Inputs: ``x_0 .. x_n``. Attributes: ``axis`` (non-negative), ``shifts`` (tuple, one per input:
``e_y - e_i``), ``lo``, ``hi``.

Semantics: ``y = concat([clamp(rshift_round(x_i, shifts[i]), lo, hi) for i], axis)``.
"""
from __future__ import annotations

import numpy as np

from ..intmath import requantize
from . import Bounds, IntOpDef, hull, make_cost, register, requant_bounds


@register
class QConcat(IntOpDef):
    name = "QConcat"

    def simulate(self, node, inputs):
        a = node.attrs
        parts = [requantize(x.astype(np.int64), s, a["lo"], a["hi"]) for x, s in zip(inputs, a["shifts"])]
        return [np.concatenate(parts, axis=a["axis"])]

    def bounds(self, node, graph, in_ranges):
        a = node.attrs
        outs, inter = [], {}
        for i, (r, s) in enumerate(zip(in_ranges, a["shifts"])):
            out, steps = requant_bounds([r], [s], a["lo"], a["hi"])
            outs.append(out)
            inter.update({f"{k}_{i}": v for k, v in steps.items()})
        return Bounds([hull(outs)], inter)

    def cost(self, node, graph):
        """Per element of input ``i``: one rounding add when ``shifts[i] > 0``, one shift when
        ``shifts[i] != 0``; the copy itself is free."""
        adds = shifts = 0
        for name, s in zip(node.inputs, node.attrs["shifts"]):
            e = int(np.prod(graph.values[name].shape[1:], dtype=np.int64))
            adds += e * (s > 0)
            shifts += e * (s != 0)
        return make_cost(adds, shifts)
