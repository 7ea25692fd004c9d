"""`qpermute_generic`: the C kernel of QPermute (its single variant): each output channel's
plane copied from its input channel's."""
from __future__ import annotations

import numpy as np

from pqc.backends.c_tables import uint_table
from pqc.backends.kernels import KernelDef, register


@register
class QPermuteGeneric(KernelDef):
    name = "qpermute_generic"
    op = "QPermute"
    variant = "generic"
    packed_io = True

    def c_context(self, node, graph):
        """The element offset of each output channel's source plane (``perm[c]`` planes in)."""
        shape = graph.values[node.inputs[0]].shape
        plane = int(np.prod(shape[2:], dtype=np.int64))
        return {"c": shape[1], "plane": plane, "sources": uint_table(np.asarray(node.attrs["perm"]) * plane)}
