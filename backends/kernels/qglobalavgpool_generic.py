"""`qglobalavgpool_generic`: the C kernel of QGlobalAvgPool (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import multiplier_codes, requant_shifts
from pqc.backends.kernels import KernelDef, register


@register
class QGlobalAvgPoolGeneric(KernelDef):
    name = "qglobalavgpool_generic"
    op = "QGlobalAvgPool"
    variant = "generic"
    packed_io = True

    def c_context(self, node, graph):
        """The multiplier's NAF record and the total rounding shift ``k + shift_base``."""
        a = node.attrs
        _, c, h, w = graph.values[node.inputs[0]].shape
        shift = requant_shifts(a["k"] + a["shift_base"], node.name).values[0]
        return {"codes": multiplier_codes([a["m"]])["codes"], "shift": shift, "c": c, "hw": h * w,
                "m": a["m"], "k": a["k"], "lo": a["lo"], "hi": a["hi"]}
