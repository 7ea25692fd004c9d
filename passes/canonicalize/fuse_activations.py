"""ReLU and Clip fused into the layer that produces their input.

Invariant established: a ``Relu``, a ``Clip`` with both bounds (ReLU6 and the like) or a
``Clip`` with min 0 and no max (a ReLU), whose input is the output of a Conv, Gemm or Add
without an ``act`` and read by nothing else, is gone: the producer carries it as ``act``
(`pqc.ops.activation`). Because a clamp is monotone it commutes with max, so an activation
behind a chain of single-reader MaxPools moves in front of them first (the common
conv -> maxpool -> relu ordering fuses too).
"""
from __future__ import annotations

from typing import Any

from pqc.ir import Graph, Node

from pqc.passes.canonicalize.rewrite import absorb, sole_reader

FUSING_OPS = ("Conv", "Gemm", "Add")


def fuse_activations(graph: Graph) -> Graph:
    g = graph.copy()
    for node in [n for n in g.nodes if n.op in ("Relu", "Clip")]:
        act = _as_act(node)
        if act is None:
            continue
        chain = _maxpool_chain(g, node)
        target = g.producer(chain[-1].inputs[0] if chain else node.inputs[0])
        if target is None or target.op not in FUSING_OPS or target.attrs.get("act") is not None:
            continue
        if sole_reader(g, target.outputs[0]) is not (chain[-1] if chain else node):
            continue
        target.attrs["act"] = act
        # act(maxpool(x)) == maxpool(act(x)): the pool nearest the activation takes its output.
        absorb(g, chain[0] if chain else target, node)
    g.prune_unused()
    return g


def _as_act(node: Node) -> Any:
    """The ``act`` value equivalent to this Relu/Clip node, or None when it cannot be fused."""
    if node.op == "Relu":
        return "relu"
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    if hi is None:
        return "relu" if lo is not None and float(lo) == 0.0 else None
    return None if lo is None else ("clip", float(lo), float(hi))


def _maxpool_chain(g: Graph, node: Node) -> list[Node]:
    """The single-reader MaxPools directly upstream of ``node``, nearest first."""
    chain: list[Node] = []
    current = node
    while True:
        pool = g.producer(current.inputs[0])
        if pool is None or pool.op != "MaxPool" or sole_reader(g, pool.outputs[0]) is not current:
            return chain
        chain.append(pool)
        current = pool

