"""Per-layer kernel choice for ``--optimize size|speed|balanced``.

Every kernel of an op computes the same integers, so the choice changes only the C: it is
recorded as ``node.meta["kernel"]`` (saved with the program, so `pqc verify` and `pqc firmware`
on a build folder re-emit the same C) for the nodes of ops that have several kernels. The cost
measured here is a layer's constant-table bytes, counted as the emitter counts them (the sum of
the `CArray`s of the kernel's ``c_context``):

* ``size``: the kernel with the fewest table bytes (ties go to the op's default);
* ``speed``: the op's default kernel (the digit tables: adds per nonzero weight digit);
* ``balanced``: the default, unless its tables outweigh the layer's weights stored as plain
  int8 plus int32 biases; then the smallest kernel.
"""
from __future__ import annotations

from pqc.errors import PqcError
from pqc.ir import Graph, Node

from .c_tables import table_bytes
from .kernels import KERNELS, KernelDef

OPTIMIZE = ("size", "balanced", "speed")


def kernel_table_bytes(kernel: KernelDef, node: Node, graph: Graph) -> int:
    """The bytes of the constant tables ``kernel`` emits for ``node``."""
    return table_bytes(kernel.c_context(node, graph))


def int8_bytes(node: Node, graph: Graph) -> int:
    """A QConv/QGemm node's weights as plain int8 and biases as int32 (the yardstick of ``balanced``)."""
    return graph.values[node.inputs[1]].size + 4 * graph.values[node.inputs[2]].size


def choose_kernel(node: Node, graph: Graph, optimize: str) -> KernelDef:
    """The kernel ``optimize`` picks for ``node`` among its op's kernels."""
    kernels = sorted((k for k in KERNELS.values() if k.op == node.op), key=lambda k: (not k.default, k.name))
    default = kernels[0]
    if optimize == "speed" or len(kernels) == 1:
        return default
    sizes = {k.name: kernel_table_bytes(k, node, graph) for k in kernels}
    smallest = min(kernels, key=lambda k: sizes[k.name])  # stable: the default wins ties
    if optimize == "size" or sizes[default.name] > int8_bytes(node, graph):
        return smallest
    return default


def check_optimize(optimize: str) -> None:
    """Refuse an unknown goal (the driver calls this before any pass runs)."""
    if optimize not in OPTIMIZE:
        raise PqcError(f"--optimize {optimize!r}: choose one of {', '.join(OPTIMIZE)}")


def select_kernels(program: Graph, optimize: str = "balanced") -> Graph:
    """A copy of ``program`` whose nodes with a choice of kernel record the one ``optimize`` picks."""
    check_optimize(optimize)
    out = program.copy()
    for node in out.nodes:
        if sum(k.op == node.op for k in KERNELS.values()) > 1:
            node.meta["kernel"] = choose_kernel(node, out, optimize).name
    return out
