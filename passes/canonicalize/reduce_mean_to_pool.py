"""Spatial means as pooling.

Invariant established: no ReduceMean averages exactly the spatial axes (2, 3) of a rank-4
tensor; each became ``GlobalAveragePool`` (followed by ``Flatten(axis=1)`` when keepdims=0).
"""
from __future__ import annotations

from pqc.ir import Graph, Node, Value


def reduce_mean_to_pool(graph: Graph) -> Graph:
    g = graph.copy()
    for node in [n for n in g.nodes if n.op == "ReduceMean"]:
        shape = g.values[node.inputs[0]].shape
        if len(shape) != 4 or sorted(a % 4 for a in node.attrs["axes"]) != [2, 3]:
            continue
        node.op, keepdims = "GlobalAveragePool", node.attrs["keepdims"]
        node.attrs = {}
        if not keepdims:
            dtype = g.values[node.inputs[0]].dtype
            pooled = g.add_value(Value(g.unique_name(f"{node.outputs[0]}_pooled"), shape[:2] + (1, 1), dtype))
            flatten_name = g.unique_name(f"{node.name}_flatten")
            flatten = Node("Flatten", [pooled.name], [node.outputs[0]], {"axis": 1}, flatten_name)
            g.nodes.insert(g.nodes.index(node) + 1, flatten)
            node.outputs = [pooled.name]
    return g
