"""QPermute: the channels in another order (ChannelPermute: a channel shuffle); no arithmetic.

Input ``x`` [N, C, ...]. Attribute ``perm``: output channel ``c`` is input channel ``perm[c]``.

Semantics: ``y[:, c] = x[:, perm[c]]``; same exponent and format.
"""
from __future__ import annotations

from . import Bounds, IntOpDef, register


@register
class QPermute(IntOpDef):
    name = "QPermute"

    def simulate(self, node, inputs):
        return [inputs[0][:, list(node.attrs["perm"])]]

    def bounds(self, node, graph, in_ranges):
        return Bounds([in_ranges[0]])
