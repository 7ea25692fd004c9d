"""`qadd_generic`: the C kernel of QAdd (its single variant)."""
from __future__ import annotations

from pqc.backends.c_tables import CTYPES, ITEMSIZE, requant_shifts
from pqc.backends.kernels import KernelDef, register
from pqc.backends.streaming import STREAMED, is_fed


@register
class QAddGeneric(KernelDef):
    name = "qadd_generic"
    op = "QAdd"
    variant = "generic"
    packed_io = True

    def c_context(self, node, graph):
        """The attributes, with the three shifts checked against the C's range; at the end of a
        row-streamed chain (`pqc.backends.streaming`) also the row's planes and width, and a
        row buffer (scratch) of the streamed operand: ``planes`` are the element steps between
        the channels of ``a`` and ``b`` (the row buffer's is its width)."""
        requant_shifts((node.attrs["shift_a"], node.attrs["shift_b"], node.attrs["shift"]), node.name)
        ctx = dict(node.attrs)
        if is_fed(node):
            _, c, h, w = graph.values[node.outputs[0]].shape
            fed = [graph.values[i] for i in node.inputs[:2]]
            streamed = next(v for v in fed if v.meta.get(STREAMED))
            ctx.update(c=c, w=w, planes=[w if v.meta.get(STREAMED) else h * w for v in fed],
                       scratch_bytes=c * w * ITEMSIZE[CTYPES[streamed.dtype]])
        return ctx
