"""`qconcat_generic`: the C kernel of QConcat (its single variant)."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import requant_shifts
from pqc.backends.kernels import KernelDef, register


@register
class QConcatGeneric(KernelDef):
    name = "qconcat_generic"
    op = "QConcat"
    variant = "generic"

    def c_context(self, node, graph):
        """``outer`` blocks (the dims before ``axis``), each the inputs' ``inners`` elements in turn."""
        a = node.attrs
        shapes = [graph.values[i].shape for i in node.inputs]
        return {
            "axis": a["axis"], "shifts": requant_shifts(a["shifts"], node.name).values,
            "outer": int(np.prod(shapes[0][:a["axis"]], dtype=np.int64)),
            "inners": [int(np.prod(s[a["axis"]:], dtype=np.int64)) for s in shapes],
            "lo": a["lo"], "hi": a["hi"],
        }
