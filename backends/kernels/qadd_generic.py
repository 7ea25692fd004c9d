"""`qadd_generic`: the C kernel of QAdd (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import requant_shifts
from pqc.backends.kernels import KernelDef, register


@register
class QAddGeneric(KernelDef):
    name = "qadd_generic"
    op = "QAdd"
    variant = "generic"
    packed_io = True

    def c_context(self, node, graph):
        """The attributes, with the three shifts checked against the C's range."""
        requant_shifts((node.attrs["shift_a"], node.attrs["shift_b"], node.attrs["shift"]), node.name)
        return dict(node.attrs)
