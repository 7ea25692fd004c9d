"""Arithmetic with a constant in one normal form.

Invariant established: ``Sub(x, c)`` became ``Add(x, -c)`` and ``Div(x, c)`` became
``Mul(x, 1/c)``; in every Add and Mul with exactly one constant operand, the constant is the
second operand. Sub of two activations, or of a constant minus an activation, is left alone.
"""
from __future__ import annotations

import numpy as np

from pqc.ir import Graph

_INVERSES = {"Sub": ("Add", np.negative), "Div": ("Mul", np.reciprocal)}
_COMMUTATIVE = ("Add", "Mul")


def normalize_arith(graph: Graph) -> Graph:
    g = graph.copy()
    for node in g.nodes:
        if node.op in _COMMUTATIVE and len(node.inputs) == 2:
            a, b = node.inputs
            if g.values[a].is_const and not g.values[b].is_const:
                node.inputs = [b, a]
        elif node.op in _INVERSES and g.const(node.inputs[1]) is not None and not g.values[node.inputs[0]].is_const:
            op, invert = _INVERSES[node.op]
            const = g.const(node.inputs[1])
            dtype = const.dtype if np.issubdtype(const.dtype, np.floating) else np.dtype(np.float32)
            new = g.add_const(f"{node.name}_{op.lower()}", invert(const.astype(dtype)))
            node.op, node.inputs[1] = op, new.name
    g.prune_unused()
    return g
