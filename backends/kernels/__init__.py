"""C kernels: how each integer op becomes C. One `KernelDef` per op variant, one module each.

An integer op's semantics, bounds and cost live in the core (`pqc.intops`); a kernel holds its C
faces: ``template``, the jinja2 file in ``codegen_templates/`` that defines the layer's
``static`` function, and ``c_context(node, graph)``, the dict the template renders with (tables
as `pqc.backends.c_tables.CArray`, shapes, shifts; see `pqc.backends.c_emitter` for the
contract). Every kernel of an op computes exactly the integers of the op's ``simulate``; the
harness proves it on every build.

Kernels are named ``<op>_<variant>`` (CMSIS-NN style: the name says what the kernel is) and
registered by module import. Adding a variant is one module here and one template:
`kernel_for` gives a node the kernel a selection pass recorded in ``node.meta["kernel"]``, else
its op's ``default`` kernel.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from pqc.errors import ModelError
from pqc.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from pqc.ir import Graph, Node


class KernelDef:
    """Base class of kernels: subclasses set ``name`` (``<op>_<variant>``, also the template's
    file name ``codegen_templates/<name>.c.j2``), ``op`` and ``variant``, and override
    ``c_context`` when the template needs more than the node's attributes."""

    name: str = ""
    #: the integer op (`pqc.intops`) this kernel implements
    op: str = ""
    variant: str = ""
    #: the kernel an op's nodes get when no selection pass chose one (exactly one per op)
    default: bool = True
    #: the template reads and writes each activation in its layout, packed sub-byte fields
    #: included (`pqc.backends.activation_layout`: the ``packed``/``ptype`` of ``x`` and ``y``)
    packed_io: bool = False
    #: the weights are baked into the code (no weight table): `--optimize size` counts the code
    #: as their storage (`pqc.backends.kernel_select`)
    code_holds_weights: bool = False
    #: the most code bytes (estimated: flash less tables) a layer may take with this kernel,
    #: None for no limit; selection skips the kernel above it (`pqc.backends.kernel_select`)
    max_code_bytes: int | None = None

    @property
    def template(self) -> str:
        """The kernel's template file, named after the kernel."""
        return f"{self.name}.c.j2"

    def supports(self, node: "Node", graph: "Graph") -> bool:
        """Whether this kernel can emit ``node`` (a specialisation of some shapes only says no
        to the rest; selection skips it and a recorded choice it cannot emit is refused)."""
        return True

    def stack_bytes(self, node: "Node", graph: "Graph") -> int:
        """Bytes of stack arrays this kernel's functions declare for ``node`` beyond the few
        words every kernel keeps: the RAM check adds the largest to its stack allowance."""
        return 0

    def c_context(self, node: "Node", graph: "Graph") -> dict[str, Any]:
        return dict(node.attrs)

    def cost_features(self, node: "Node", graph: "Graph", ctx: Mapping[str, Any]) -> dict[str, float]:
        """Counts this kernel's instructions and code bytes are roughly linear in, for the
        calibrated cost model (`pqc.backends.cost_model`; names are the kernel's own, the
        coefficients come from ``benchmarks/calibrate_kernels.py``). ``ctx`` is the kernel's
        ``c_context(node, graph)``, which the caller has already built. The default suits an
        elementwise loop: one call, its output elements and its activation input elements, and
        of those the ones read or written as packed fields (`pqc.backends.activation_layout`)."""
        from pqc.backends.activation_layout import packed_bits

        outputs = [graph.values[v] for v in node.outputs]
        inputs = [graph.values[v] for v in node.inputs if v and not graph.values[v].is_const]
        return {
            "calls": 1.0,
            "outputs": float(sum(v.size for v in outputs)),
            "inputs": float(sum(v.size for v in inputs)),
            "packed_outputs": float(sum(v.size for v in outputs if packed_bits(v))),
            "packed_inputs": float(sum(v.size for v in inputs if packed_bits(v))),
        }


KERNELS: Registry[KernelDef] = Registry("kernel")
#: class decorator: instantiate and register a KernelDef under its ``name``
register = KERNELS.register


def kernel_for(node: "Node", graph: "Graph | None" = None) -> KernelDef:
    """The kernel that emits ``node``: ``node.meta["kernel"]`` when set, else its op's default.
    With ``graph``, a recorded kernel that does not support the node is refused."""
    chosen = node.meta.get("kernel")
    if chosen is not None:
        kernel = KERNELS.get(chosen)
        if kernel.op != node.op:
            raise ModelError(f"node {node.name!r} ({node.op}): kernel {chosen!r} implements {kernel.op}")
        if graph is not None and not kernel.supports(node, graph):
            raise ModelError(f"node {node.name!r} ({node.op}): kernel {chosen!r} does not support its shape or widths")
        return kernel
    defaults = [k for k in KERNELS.values() if k.op == node.op and k.default]
    if len(defaults) != 1:
        raise ModelError(f"node {node.name!r}: no C kernel for integer op {node.op!r}")
    return defaults[0]


# Registration side effects: each module defines and registers one kernel.
from . import (  # noqa: E402,F401
    qadd_generic,
    qaffine_generic,
    qavgpool_generic,
    qconcat_generic,
    qconv_1x1_lanes,
    qconv_buckets,
    qconv_compact,
    qconv_fast,
    qconv_products,
    qconv_tables,
    qconv_unrolled,
    qgemm_compact,
    qgemm_tables,
    qgemm_unrolled,
    qglobalavgpool_generic,
    qlut_generic,
    qmaxpool_generic,
    qmul_generic,
    qpermute_generic,
    qreshape_generic,
)
