"""Small graph-editing helpers shared by the canonicalization passes.

They edit a graph in place, so a pass calls them only on its own ``graph.copy()``.
"""
from __future__ import annotations

from pqc.ir import Graph, Node


def sole_reader(graph: Graph, value: str) -> Node | None:
    """The node that reads ``value`` when it is the only reader and ``value`` is no graph output."""
    if value in graph.outputs:
        return None
    readers = graph.consumers(value)
    return readers[0] if len(readers) == 1 and readers[0].inputs.count(value) == 1 else None


def is_linear_layer(graph: Graph, node: Node) -> bool:
    """A Conv, or a canonical Gemm (transA=0, transB=1, alpha=beta=1), with a constant weight, a
    constant or absent bias and no fused ``act``: a layer a per-channel affine can fold into."""
    a = node.attrs
    if node.op not in ("Conv", "Gemm") or a.get("act") is not None or graph.const(node.inputs[1]) is None:
        return False
    if len(node.inputs) > 2 and node.inputs[2] and graph.const(node.inputs[2]) is None:
        return False
    return node.op == "Conv" or (a["transB"] == 1 and not a["transA"] and a["alpha"] == 1.0 and a["beta"] == 1.0)


def absorb(graph: Graph, producer: Node, consumer: Node) -> None:
    """Remove ``consumer`` and let ``producer`` write the consumer's output in its place.

    The caller has already merged the consumer's effect into ``producer``; the producer's old
    output must have had ``consumer`` as its only reader. Output names the user sees are kept.
    """
    old = producer.outputs[0]
    producer.outputs[0] = consumer.outputs[0]
    graph.remove_node(consumer)
    del graph.values[old]


def bypass(graph: Graph, node: Node) -> None:
    """Remove a node whose first output equals its first input (other outputs must be unused).

    Readers of the output read the input instead. When the output is a graph output, the
    input's producer is renamed to write it, so graph output names never change; a node that
    connects a graph input or constant (or another graph output) straight to a graph output
    cannot be removed that way and stays.
    """
    src, dst = node.inputs[0], node.outputs[0]
    if dst not in graph.outputs:
        graph.remove_node(node)
        graph.replace_uses(dst, src)
        return
    producer = graph.producer(src)
    if producer is None or src in graph.outputs:
        return
    graph.remove_node(node)
    producer.outputs = [dst if o == src else o for o in producer.outputs]
    for reader in graph.consumers(src):
        reader.inputs = [dst if i == src else i for i in reader.inputs]
    del graph.values[src]
