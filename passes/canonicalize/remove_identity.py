"""Drop inference no-ops: Identity and Dropout.

Invariant established: no Identity or Dropout node remains, except one that connects a graph
input or constant directly to a graph output (removing it would rename a graph output). A
Dropout's optional mask output must be unused (it is meaningless at inference).
"""
from __future__ import annotations

from pqc.errors import ModelError
from pqc.ir import Graph

from pqc.passes.canonicalize.rewrite import bypass

NO_OPS = ("Identity", "Dropout")


def remove_identity(graph: Graph) -> Graph:
    g = graph.copy()
    for node in [n for n in g.nodes if n.op in NO_OPS]:
        if any(o and (g.consumers(o) or o in g.outputs) for o in node.outputs[1:]):
            raise ModelError(f"node {node.name!r} ({node.op}): its mask output is used, which inference cannot provide")
        bypass(g, node)
    g.prune_unused()
    return g
