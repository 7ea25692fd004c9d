"""QReshape: a new shape over the same buffer (Reshape, Flatten, Squeeze, Unsqueeze).

Input ``x``. Attributes: ``shape`` (full output shape, batch included), ``keep_batch`` (bool:
the output's dim 0 is the input's batch, so batch N gives ``(N,) + shape[1:]``).

Semantics: row-major reshape; no data moves (the C emitter aliases the buffer); same exponent.
"""
from __future__ import annotations

from . import Bounds, IntOpDef, register


@register
class QReshape(IntOpDef):
    name = "QReshape"
    aliases_input = True

    def simulate(self, node, inputs):
        x, shape = inputs[0], tuple(node.attrs["shape"])
        if node.attrs["keep_batch"]:
            shape = (x.shape[0],) + shape[1:]
        return [x.reshape(shape)]

    def bounds(self, node, graph, in_ranges):
        return Bounds([in_ranges[0]])
