"""`qaffine_generic`: the C kernel of QAffine (its single variant)."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import multiplier_codes, requant_shifts, typed_table
from pqc.backends.kernels import KernelDef, register


@register
class QAffineGeneric(KernelDef):
    name = "qaffine_generic"
    op = "QAffine"
    variant = "generic"

    def c_context(self, node, graph):
        """Per channel: the NAF record of ``m[c]``, the bias and the shift; ``inner`` elements
        per channel and sample, ``outer`` samples."""
        shape = graph.values[node.inputs[0]].shape
        return {
            **multiplier_codes(graph.values[node.inputs[1]].data),
            "bias": typed_table(graph.values[node.inputs[2]].data, "int32"),
            "shift": requant_shifts(node.attrs["shift"], node.name),
            "outer": shape[0], "c": shape[1], "inner": int(np.prod(shape[2:], dtype=np.int64)),
            "lo": node.attrs["lo"], "hi": node.attrs["hi"],
        }
