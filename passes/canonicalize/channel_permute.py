"""Channel shuffles as one ChannelPermute.

Invariant established: no Reshape -> Transpose -> Reshape chain (each the sole reader of the
last) that maps a 4-D activation to its own shape while moving only whole channels, e.g.
ShuffleNet's ``[N, C, H, W] -> [N, g, C/g, H, W] -> transpose(0, 2, 1, 3, 4) -> [N, C, H, W]``;
each is a `ChannelPermute` whose ``perm`` is read off the chain itself (run on distinct values),
so any such chain is recognised whatever its split. A chain that mixes spatial positions stays
as it is (and is refused at lowering, naming its Transpose).
"""
from __future__ import annotations

import numpy as np
import torch

from pqc.ir import Graph, Node
from pqc.ops import get_op
from pqc.passes.canonicalize.rewrite import sole_reader


def _chain_permutation(chain: list[Node], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The channel permutation ``chain`` applies to a ``shape`` (batch 1) tensor, or None when it
    moves anything but whole channels."""
    c, plane = shape[1], int(np.prod(shape[2:]))
    x = torch.arange(c * plane, dtype=torch.float64).reshape(1, *shape[1:])
    for node in chain:
        (x,) = get_op(node.op).forward(node, [x])
    y = x.reshape(c, plane)
    perm = (y[:, 0] // plane).long()
    if tuple(x.shape[1:]) != tuple(shape[1:]) or not torch.equal(y, perm[:, None] * plane + torch.arange(plane)):
        return None
    return tuple(int(p) for p in perm)


def channel_permute(graph: Graph) -> Graph:
    g = graph.copy()
    for transpose in [n for n in g.nodes if n.op == "Transpose"]:
        head = g.producer(transpose.inputs[0])
        tail = sole_reader(g, transpose.outputs[0])
        if head is None or head.op != "Reshape" or sole_reader(g, head.outputs[0]) is not transpose \
                or tail is None or tail.op != "Reshape":
            continue
        shape = tuple(g.values[head.inputs[0]].shape)
        if len(shape) != 4 or tuple(g.values[tail.outputs[0]].shape) != shape:
            continue
        perm = _chain_permutation([head, transpose, tail], shape)
        if perm is None:
            continue
        at = g.nodes.index(head)
        for node in (head, transpose, tail):
            g.remove_node(node)
        g.nodes.insert(at, Node("ChannelPermute", [head.inputs[0]], [tail.outputs[0]], {"perm": perm},
                                name=transpose.name))
    g.prune_unused()
    return g
