"""Explicit zero padding folded into the window op that reads it.

Invariant established: a constant-zero ``Pad`` of only the spatial axes of a rank-4 tensor
no longer feeds a Conv, nor an AveragePool that counts padding (count_include_pad=1, or no
padding of its own, in which case it is switched to count it) with ceil_mode=0 and a result
whose padding stays smaller than its kernel (what onnxruntime accepts). The padding moved into
the reader's ``pads`` (top, left, bottom, right); a Pad left without readers is removed.
"""
from __future__ import annotations

from pqc.ir import Graph, Node


def fold_pad(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers_map()
    for node in g.nodes:
        if node.op not in ("Conv", "AveragePool"):
            continue
        pad = producers.get(node.inputs[0])
        extra = _spatial_zero_pads(g, pad) if pad is not None and pad.op == "Pad" else None
        if extra is None:
            continue
        pads = tuple(p + e for p, e in zip(node.attrs["pads"], extra))
        if node.op == "AveragePool" and not _pool_can_take(node, pads):
            continue
        node.attrs["pads"] = pads
        if node.op == "AveragePool":
            node.attrs["count_include_pad"] = 1
        node.inputs[0] = pad.inputs[0]
    g.prune_unused()
    return g


def _spatial_zero_pads(g: Graph, pad: Node) -> tuple[int, int, int, int] | None:
    """The pad's (top, left, bottom, right) when it is a zero pad of H and W only, else None."""
    widths = tuple(pad.attrs["pads"])
    if float(pad.attrs["value"]) != 0.0 or len(g.values[pad.inputs[0]].shape) != 4 or min(widths) < 0:
        return None
    n0, c0, t, l, n1, c1, b, r = widths
    return (t, l, b, r) if n0 == c0 == n1 == c1 == 0 else None


def _pool_can_take(node: Node, pads: tuple[int, ...]) -> bool:
    a = node.attrs
    counts_pad = a["count_include_pad"] or not any(a["pads"])
    kh, kw = a["kernel_shape"]
    fits = max(pads[0], pads[2]) < kh and max(pads[1], pads[3]) < kw
    return bool(counts_pad) and not a["ceil_mode"] and fits
