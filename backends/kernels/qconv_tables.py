"""`qconv_tables`: QConv as NAF digit tables walked one output at a time."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import linear_tables, window_geometry
from pqc.backends.kernels import KernelDef, register


def digit_walk_features(ctx: dict, positions: int, pad_elements: int = 0) -> dict[str, float]:
    """Cost features of a digit-table walk over ``positions`` outputs per channel: each output
    visits its channel's digit groups and digits (one delta each); each channel then skips its groups once."""
    cout = len(ctx["ngroups"].values)
    groups = sum(ctx["ngroups"].values)
    return {
        "calls": 1.0, "outputs": float(cout * positions), "channels": float(cout), "groups": float(groups),
        "group_visits": float(groups * positions), "digit_visits": float(len(ctx["deltas"].values) * positions),
        "padded": float(pad_elements > 0), "pad_elements": float(pad_elements),
    }


@register
class QConvTables(KernelDef):
    name = "qconv_tables"
    op = "QConv"
    variant = "tables"

    def c_context(self, node, graph):
        """Zero-padded input planes (when padded) and digit tables whose offsets cover the
        channel group's ``Cin/group`` planes; the kernel steps windows by the strides."""
        a = node.attrs
        cout, cin_g = graph.values[node.inputs[1]].shape[:2]
        t, l, b, r = a["pads"]
        geo = window_geometry(graph.values[node.inputs[0]], graph.values[node.outputs[0]], a, (l, r, t, b), 0)
        taps = geo.pop("offsets")
        offsets = (np.arange(cin_g)[:, None] * geo["plane"] + taps[None, :]).ravel()
        return {
            **geo,
            **linear_tables(node, graph, offsets),
            "cin_g": cin_g, "cout": cout, "cout_g": cout // a["group"], "group": a["group"],
            "group_stride": cin_g * geo["plane"],
        }

    def cost_features(self, node, graph):
        ctx = self.c_context(node, graph)
        return digit_walk_features(ctx, ctx["oh"] * ctx["ow"], ctx["c"] * ctx["plane"] if ctx["padded"] else 0)
