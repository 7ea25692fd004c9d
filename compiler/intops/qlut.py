"""QLut: any elementwise function of one small-integer input, as a table.

Inputs: ``x`` (int8/uint8, or a few more bits), ``table`` constant with one entry per value the
input format can represent, in order from ``in_min``. Attributes: ``in_min`` (the smallest
representable input).

Semantics: ``y = table[x - in_min]``. Lowering fills the table by evaluating the float function
on every dequantized input and quantizing to the output format (sigmoid, hard-sigmoid,
hard-swish, leaky ReLU, a ReLU/ReLU6 after a producer that cannot absorb the clamp, ...).
"""
from __future__ import annotations

import numpy as np

from . import Bounds, IntOpDef, make_cost, output_elements, register


@register
class QLut(IntOpDef):
    name = "QLut"
    in_place = True

    def simulate(self, node, inputs):
        x, table = inputs
        return [table.astype(np.int64)[x.astype(np.int64) - node.attrs["in_min"]]]

    def bounds(self, node, graph, in_ranges):
        table = graph.values[node.inputs[1]].data
        x_lo, x_hi = in_ranges[0]
        first = max(x_lo - node.attrs["in_min"], 0)
        reach = table[first:x_hi - node.attrs["in_min"] + 1]
        return Bounds([(int(reach.min()), int(reach.max()))], {"index": (first, first + len(reach) - 1)})

    def cost(self, node, graph):
        """adds: the index offset per element; weight_bytes: the table."""
        table = graph.values[node.inputs[1]].data
        return make_cost(output_elements(node, graph), 0, table.nbytes)
