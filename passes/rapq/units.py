"""Reconstruction units of RAPQ, found on the canonical float IR, and their loss exponents.

A unit is a single-entry, single-exit run of nodes that block reconstruction trains as a whole
(rapq.md section 1): a residual block (every node between two *cut* values, where a cut is an
activation that is the only one live at that point of the topological order, so a block and
its shortcut stay together), an inverted residual without a shortcut (a depthwise conv joins
the unit of the layer before it, and the layer after it joins the depthwise conv's unit), or
a layer alone. Nodes without weights (pools, reshapes) join the unit of the next layer.

The unit's BN scale vector gamma (kept by `fold_batchnorm` in ``node.meta["bn_scale"]``) is the one
of its deepest layer feeding the unit's output (the main branch before a residual add, or the
unit's output layer), and sets the unit's loss exponent `loss_exponent` (section 5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pqc.ir import Graph, Node
from pqc.quant import LAYER_OPS

MODE_C = {"quick": 0.1, "full": 0.9}
"""The constant ``c`` of the loss-exponent formula per mode."""
P_WITHOUT_BN = 2.0


@dataclass(frozen=True, eq=False)
class Unit:
    """Nodes (in graph order) reconstructed together, read from ``input`` and producing ``output``."""

    nodes: tuple[Node, ...]
    input: str
    output: str
    gamma: np.ndarray | None

    @property
    def layers(self) -> list[Node]:
        return [n for n in self.nodes if n.op in LAYER_OPS]

    @property
    def name(self) -> str:
        return self.nodes[-1].name


def loss_exponent(gamma: np.ndarray | None, mode: str) -> float:
    """``p = round(1 + c * sigmoid((sum(gamma) - 1) / C), 1)`` with ``C = len(gamma)`` and ``c``
    from `MODE_C`; `P_WITHOUT_BN` for a unit without BN."""
    if gamma is None:
        return P_WITHOUT_BN
    z = (float(np.sum(gamma)) - 1.0) / len(gamma)
    return round(1.0 + MODE_C[mode] / (1.0 + math.exp(-z)), 1)


def find_units(graph: Graph) -> list[Unit]:
    """The units of a canonical single-input graph in forward order (see the module doc)."""
    segments = _segments(graph)
    merged: list[list[Node]] = []
    for seg in segments:
        if merged and len(merged) > 1 and (_is_depthwise(_layers(seg)[0]) or _is_depthwise(_layers(merged[-1])[-1])):
            merged[-1] = merged[-1] + seg
        else:
            merged.append(seg)
    units = []
    start = graph.inputs[0]
    for nodes in merged:
        output = nodes[-1].outputs[0]
        units.append(Unit(tuple(nodes), start, output, _unit_gamma(graph, nodes, output)))
        start = output
    return units


def _layers(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.op in LAYER_OPS]


def _is_depthwise(node: Node) -> bool:
    return node.op == "Conv" and node.attrs.get("group", 1) > 1


def _segments(graph: Graph) -> list[list[Node]]:
    """Runs of nodes ending at cut values, each holding at least one layer; nodes after the last
    layer's cut join the last run."""
    last_read: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name and not graph.values[name].is_const:
                last_read[name] = i
    live: set[str] = set(graph.inputs)
    segments: list[list[Node]] = []
    current: list[Node] = []
    for i, node in enumerate(graph.nodes):
        live.update(node.outputs)
        live = {name for name in live if last_read.get(name, -1) > i or name in node.outputs}
        current.append(node)
        is_cut = len(live) == 1 and live == {node.outputs[0]}
        if is_cut and _layers(current):
            segments.append(current)
            current = []
    if current and segments:
        segments[-1] += current
    elif current:
        segments.append(current)
    return segments


def _unit_gamma(graph: Graph, nodes: list[Node], output: str) -> np.ndarray | None:
    """gamma of the deepest layer among those feeding ``output`` through non-layer nodes."""
    producers = {o: n for n in nodes for o in n.outputs}
    depth: dict[str, int] = {}
    for n in nodes:
        below = max((depth[producers[i].name] for i in n.inputs if i in producers), default=0)
        depth[n.name] = below + (n.op in LAYER_OPS)
    feeding: list[Node] = []
    frontier = [output]
    while frontier:
        node = producers.get(frontier.pop())
        if node is None:
            continue
        if node.op in LAYER_OPS:
            feeding.append(node)
        else:
            frontier.extend(node.inputs)
    with_bn = [n for n in feeding if "bn_scale" in n.meta]
    if not with_bn:
        return None
    return np.asarray(max(with_bn, key=lambda n: depth[n.name]).meta["bn_scale"], dtype=np.float64)
