"""Physical channel pruning: remove the channels a keep-mask drops from tensors and weights.

`prune_channels` turns a choice of kept channels per group (`channel_groups`) into a smaller,
valid float graph: activation shapes shrink, Conv/Gemm weights lose the rows of dropped
output channels and the columns of dropped input channels (a Flatten's features included),
biases and BatchNormalization parameters shrink with their channels, and a depthwise conv's
``group`` becomes its new channel count. The result computes what the original computes when
the dropped channels are silenced (their producing weights, biases and BN scale and shift set to
zero): the equivalence the tests check. Constant names are kept, so a pruned model's parameters
keep their names in the executor and the exported ONNX.
"""
from __future__ import annotations

import numpy as np

from pqc.errors import PqcError
from pqc.ir import Graph, Node

from pqc.passes.channel_groups import ChannelDeps, is_depthwise


def prune_channels(graph: Graph, deps: ChannelDeps, keep: dict[int, np.ndarray]) -> Graph:
    """A copy of ``graph`` where group ``g`` keeps only channels ``keep[g]`` (indices into the
    group; groups not in ``keep`` are untouched). The result verifies."""
    for gid, kept in keep.items():
        group = deps.groups[gid]
        if not group.prunable and len(kept) != group.size:
            raise PqcError(f"channel group {gid} cannot be pruned: {group.frozen}")
        if len(kept) == 0 or len(np.unique(kept)) != len(kept) or np.min(kept) < 0 or np.max(kept) >= group.size:
            raise PqcError(f"channel group {gid}: keep indices must be distinct, in 0..{group.size - 1}, at least one")
    keep = {gid: np.sort(np.asarray(kept, dtype=np.int64)) for gid, kept in keep.items()}
    positions = deps.positions(keep)
    out = graph.copy()
    for node in out.nodes:
        _rewrite_node(out, node, positions)
    for name, kept in positions.items():
        value = out.values[name]
        value.shape = (value.shape[0], len(kept)) + tuple(value.shape[2:])
    out.prune_unused()
    out.verify()
    return out


def _rewrite_node(g: Graph, node: Node, positions: dict[str, np.ndarray]) -> None:
    """Slice the constants of ``node`` to the kept channels of its input and output."""
    out_keep = positions.get(node.outputs[0])
    in_keep = positions.get(node.inputs[0]) if node.inputs else None
    if node.op == "Conv":
        if is_depthwise(g, node):
            _slice(g, node, 1, out_keep, 0)
            node.attrs["group"] = len(out_keep)
        elif node.attrs["group"] == 1:
            _slice(g, node, 1, out_keep, 0)
            _slice(g, node, 1, in_keep, 1)
        if len(node.inputs) > 2:
            _slice(g, node, 2, out_keep, 0)
    elif node.op == "Gemm":
        out_axis, in_axis = (0, 1) if node.attrs["transB"] else (1, 0)
        _slice(g, node, 1, out_keep, out_axis)
        _slice(g, node, 1, in_keep, in_axis)
        if len(node.inputs) > 2 and node.inputs[2]:
            bias = g.const(node.inputs[2])
            if bias is not None and bias.ndim >= 1 and bias.shape[-1] > 1:
                _slice(g, node, 2, out_keep, bias.ndim - 1)
    elif node.op == "BatchNormalization":
        for index in range(1, 5):
            _slice(g, node, index, in_keep, 0)


def _slice(g: Graph, node: Node, index: int, kept: np.ndarray | None, axis: int) -> None:
    """Replace constant input ``index`` of ``node`` by its slice ``kept`` along ``axis``.

    The Value is updated in place (a new array: arrays are shared with the input graph) unless
    another node reads the same constant; that one then keeps the original under its name."""
    name = node.inputs[index] if index < len(node.inputs) else ""
    data = g.const(name)
    if data is None or kept is None or len(kept) == data.shape[axis]:
        return
    sliced = np.ascontiguousarray(np.take(data, kept, axis=axis))
    if len(g.consumers(name)) > 1 or name in g.outputs:
        node.inputs[index] = g.add_const(name, sliced).name
    else:
        value = g.values[name]
        value.data, value.shape = sliced, tuple(sliced.shape)
