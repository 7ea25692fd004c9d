"""QMul: the product of two activations, a feature map and a gate (squeeze-excite).

Inputs: ``x`` [N, C, ...] and ``g``, either of ``x``'s shape or [N, C, 1, ...] (one gate per
channel, broadcast over the spatial dims). Attributes: ``shift`` (``e_y - e_x - e_g``), ``lo``,
``hi``.

Semantics: ``acc = x * g`` (exact int32); ``y = clamp(rshift_round(acc, shift), lo, hi)``.

The product needs no multiplier: the C adds ``x << k`` for each set bit ``k`` of ``|g|`` and
negates for a negative gate, so it costs at most the gate's bit width in adds. This is exact for
any gate value, unlike rounding the gate to a power of two, and cheap because gates are low-bit
activations (lowering refuses gates wider than `MAX_GATE_BITS`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..intmath import requantize
from . import Bounds, IntOpDef, abs_max, make_cost, output_elements, register, requant_bounds

#: widest gate lowering accepts: the shift-add loop runs once per bit of the gate
MAX_GATE_BITS = 8


def gate_broadcasts(x_shape: Sequence[int], g_shape: Sequence[int]) -> bool:
    """Whether ``g_shape`` is ``x_shape`` or ``x_shape`` with every dim after the channel set to 1."""
    x_shape, g_shape = tuple(x_shape), tuple(g_shape)
    per_channel = x_shape[:2] + (1,) * (len(x_shape) - 2)
    return len(x_shape) >= 2 and g_shape in (x_shape, per_channel)


@register
class QMul(IntOpDef):
    name = "QMul"
    #: output element i reads x[i] and its gate only, so y may overwrite x (or an equal-shape g)
    in_place = True

    def simulate(self, node, inputs):
        x, g = (v.astype(np.int64) for v in inputs)
        if not gate_broadcasts(x.shape, g.shape):
            raise ValueError(f"node {node.name!r} (QMul): gate of shape {g.shape} does not broadcast "
                             f"per channel over x of shape {x.shape}")
        return [requantize(x * g, node.attrs["shift"], node.attrs["lo"], node.attrs["hi"])]

    def bounds(self, node, graph, in_ranges):
        (x_lo, x_hi), (g_lo, g_hi) = in_ranges
        ends = [x_lo * g_lo, x_lo * g_hi, x_hi * g_lo, x_hi * g_hi]
        acc = (min(ends), max(ends))
        partial = abs_max((x_lo, x_hi)) * abs_max((g_lo, g_hi))
        out, inter = requant_bounds([acc], [node.attrs["shift"]], node.attrs["lo"], node.attrs["hi"])
        return Bounds([out], {"acc": acc, "shift_add": (-partial, partial), **inter})

    def cost(self, node, graph):
        """Per element, worst case: one add and one shift per gate bit (the shift-add loop), one
        add more to negate for a signed gate, and the requantization (a shift when ``shift`` is
        nonzero, plus a rounding add when positive)."""
        gate = graph.values[node.inputs[1]].meta
        bits, shift = int(gate["bits"]), node.attrs["shift"]
        e = output_elements(node, graph)
        return make_cost(e * (bits + bool(gate["signed"]) + (shift > 0)), e * (bits + (shift != 0)))
