"""`qreshape_generic`: the C kernel of QReshape (its single variant)."""
from __future__ import annotations

from pqc.backends.kernels import KernelDef, register


@register
class QReshapeGeneric(KernelDef):
    name = "qreshape_generic"
    op = "QReshape"
    variant = "generic"
    packed_io = True
