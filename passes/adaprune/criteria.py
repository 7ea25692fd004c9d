"""Weight-inheritance criteria: which channels of each group survive, and with which weights.

The budget search says how many channels a group keeps; a criterion says which ones
(algorithms/adapruner.md, step 5):

* ``l1``: the largest L1 norms of the filters producing the channel (each producer's norms
  divided by its largest, then summed over the group's producers, so tied layers weigh equally);
* ``bn``: the largest |gamma| summed over the group's BatchNormalization layers;
* ``random``: a seeded random choice (the control);
* ``scratch``: the structure alone; the pruned network is re-initialized (Kaiming-normal
  weights, zero biases, identity BatchNormalization) and inherits nothing.
"""
from __future__ import annotations

import numpy as np

from pqc.errors import PqcError
from pqc.ir import Graph

from pqc.passes.channel_groups import ChannelDeps, ChannelGroup

CRITERIA = ("l1", "bn", "random", "scratch")


def select_channels(
    graph: Graph, deps: ChannelDeps, counts: dict[int, int], criterion: str, seed: int = 0
) -> dict[int, np.ndarray]:
    """Sorted kept channel indices of each group in ``counts`` under ``criterion``."""
    if criterion not in CRITERIA:
        raise PqcError(f"unknown weight-inheritance criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    rng = np.random.default_rng(seed)
    keep = {}
    for gid, count in counts.items():
        group = deps.groups[gid]
        if criterion == "random":
            scores = rng.random(group.size)
        elif criterion == "scratch":
            scores = -np.arange(group.size, dtype=np.float64)
        else:
            scores = (_l1_scores if criterion == "l1" else _bn_scores)(graph, group)
        keep[gid] = np.sort(np.argsort(-scores, kind="stable")[:count])
    return keep


def _l1_scores(graph: Graph, group: ChannelGroup) -> np.ndarray:
    total = np.zeros(group.size)
    for name, offset in group.producers:
        node = graph.node(name)
        weight = graph.const(node.inputs[1]).astype(np.float64)
        if node.op == "Gemm" and not node.attrs["transB"]:
            weight = weight.T
        norms = np.abs(weight[offset:offset + group.size]).reshape(group.size, -1).sum(axis=1)
        total += norms / max(norms.max(), 1e-12)
    return total


def _bn_scores(graph: Graph, group: ChannelGroup) -> np.ndarray:
    if not group.bns:
        raise PqcError(f"criterion 'bn' needs BatchNormalization on channel group {group.id}")
    total = np.zeros(group.size)
    for name, offset in group.bns:
        total += np.abs(graph.const(graph.node(name).inputs[1])[offset:offset + group.size])
    return total


def reinitialize(graph: Graph, seed: int = 0) -> Graph:
    """A copy of ``graph`` trained from scratch's starting point: Kaiming-normal Conv/Gemm weights
    (fan-in, ReLU gain), zero biases, BatchNormalization scale 1, shift 0, mean 0, variance 1."""
    rng = np.random.default_rng(seed)
    out = graph.copy()
    for node in out.nodes:
        if node.op in ("Conv", "Gemm"):
            weight = out.values[node.inputs[1]]
            rows = weight.data if node.op == "Conv" or node.attrs["transB"] else weight.data.T
            fan_in = int(np.prod(rows.shape[1:]))
            weight.data = (rng.standard_normal(weight.shape) * np.sqrt(2.0 / fan_in)).astype(weight.dtype)
            if len(node.inputs) > 2 and node.inputs[2]:
                bias = out.values[node.inputs[2]]
                bias.data = np.zeros_like(bias.data)
        elif node.op == "BatchNormalization":
            for index, fill in zip(range(1, 5), (1.0, 0.0, 0.0, 1.0)):
                value = out.values[node.inputs[index]]
                value.data = np.full_like(value.data, fill)
    return out
