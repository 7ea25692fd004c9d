"""`qmul_generic`: the C kernel of QMul (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import requant_shifts
from pqc.backends.kernels import KernelDef, register


@register
class QMulGeneric(KernelDef):
    name = "qmul_generic"
    op = "QMul"
    variant = "generic"

    def c_context(self, node, graph):
        """The attributes (the shift checked against the C's range), ``gates`` (the gate's
        elements) and ``inner`` (the elements of ``x`` each gate element scales)."""
        requant_shifts(node.attrs["shift"], node.name)
        x, g = (graph.values[i] for i in node.inputs)
        return {**node.attrs, "gates": g.size, "inner": x.size // g.size}
