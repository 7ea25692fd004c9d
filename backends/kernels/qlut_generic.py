"""`qlut_generic`: the C kernel of QLut (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import typed_table
from pqc.backends.kernels import KernelDef, register


@register
class QLutGeneric(KernelDef):
    name = "qlut_generic"
    op = "QLut"
    variant = "generic"

    def c_context(self, node, graph):
        """The table in the output's C type."""
        out = graph.values[node.outputs[0]].dtype
        return {"table": typed_table(graph.values[node.inputs[1]].data, out), "in_min": node.attrs["in_min"]}
