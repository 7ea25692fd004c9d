"""`qconv_tables`: QConv as NAF digit tables walked one output at a time."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import band_geometry, linear_tables
from pqc.backends.kernels import KernelDef, register


@register
class QConvTables(KernelDef):
    name = "qconv_tables"
    op = "QConv"
    variant = "tables"
    #: read an unpadded input through the band too (the fast variant's choice)
    always_band = False

    def c_context(self, node, graph):
        """A zero-padded band of input rows per output row (when padded; `band_geometry`) and
        digit tables whose offsets cover the channel group's ``Cin/group`` planes; the kernel
        steps windows by the strides."""
        a = node.attrs
        cout, cin_g = graph.values[node.inputs[1]].shape[:2]
        t, l, b, r = a["pads"]
        geo = band_geometry(graph.values[node.inputs[0]], graph.values[node.outputs[0]], a, (l, r, t, b), 0,
                            always=self.always_band)
        taps = geo.pop("offsets")
        offsets = (np.arange(cin_g)[:, None] * geo["plane"] + taps[None, :]).ravel()
        return {
            **geo,
            **linear_tables(node, graph, offsets),
            "cin_g": cin_g, "cout": cout, "cout_g": cout // a["group"], "group": a["group"],
            "group_stride": cin_g * geo["plane"],
        }
