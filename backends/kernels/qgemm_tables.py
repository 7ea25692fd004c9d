"""`qgemm_tables`: QGemm as NAF digit tables walked one output at a time."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import linear_tables
from pqc.backends.kernels import KernelDef, register
from pqc.backends.kernels.qconv_tables import digit_walk_features


@register
class QGemmTables(KernelDef):
    name = "qgemm_tables"
    op = "QGemm"
    variant = "tables"

    def c_context(self, node, graph):
        """Digit tables over the K inputs of a row; ``rows`` samples of one call (the IR's N)."""
        rows, k = graph.values[node.inputs[0]].shape
        return {**linear_tables(node, graph, np.arange(k)), "rows": rows, "m": len(node.attrs["shift"]), "k": k}

    def cost_features(self, node, graph, ctx):
        return digit_walk_features(ctx, ctx["rows"])
