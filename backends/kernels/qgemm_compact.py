"""`qgemm_compact`: QGemm with its weights packed at their bit width (see `qconv_compact`)."""
from __future__ import annotations

from pqc.backends.c_tables import packed_weights, requant_context
from pqc.backends.kernels import KernelDef, register
from pqc.backends.kernels.qconv_compact import packed_walk_features
from pqc.intops.linear import signed_width


@register
class QGemmCompact(KernelDef):
    name = "qgemm_compact"
    op = "QGemm"
    variant = "compact"
    default = False

    def c_context(self, node, graph):
        """Packed weight rows over the K inputs of a row; ``rows`` samples of one call."""
        rows, k = graph.values[node.inputs[0]].shape
        w = graph.values[node.inputs[1]]
        return {**packed_weights(w.data, signed_width(w.data)), **requant_context(node, graph),
                "rows": rows, "m": len(node.attrs["shift"]), "k": k}

    def cost_features(self, node, graph, ctx):
        return packed_walk_features(graph.values[node.inputs[1]].data, ctx["row_bytes"], ctx["rows"])
