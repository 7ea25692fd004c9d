"""`qmaxpool_generic`: the C kernel of QMaxPool (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import TYPE_MIN, uint_table, window_geometry
from pqc.backends.kernels import KernelDef, register
from pqc.intops.window import torch_pads


@register
class QMaxPoolGeneric(KernelDef):
    name = "qmaxpool_generic"
    op = "QMaxPool"
    variant = "generic"
    packed_io = True

    def c_context(self, node, graph):
        """Input planes padded with the dtype's minimum (so padding never wins) and the window's
        tap offsets."""
        x = graph.values[node.inputs[0]]
        geo = window_geometry(x, graph.values[node.outputs[0]], node.attrs, torch_pads(x.shape[2:], node.attrs),
                              TYPE_MIN[x.dtype])
        return {**geo, "taps": uint_table(geo.pop("offsets"))}
