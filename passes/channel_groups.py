"""Channel dependency groups: which channels of which tensors stand or fall together.

Pruning a channel means removing it from every tensor that carries it and from every weight
that reads or writes it. Structure ties channels across tensors:

* a per-channel op (BatchNormalization, activations, pools) keeps its input's channels;
* a residual Add (Sub, Mul, Div of two activations) ties its operands channel by channel;
* a depthwise Conv (``group == C_in == C_out``) ties its input and output channels;
* Concat along the channel axis lays its inputs' groups side by side (by offset);
* Flatten of ``C x H x W`` expands each channel to ``H * W`` consecutive features, so a
  channel mask reaches the Gemm reading it as a feature mask;
* a Conv with ``group == 1`` or a Gemm starts a fresh group at its output.

A `ChannelGroup` is one such tied set; a value's *layout* lists the groups along its axis 1.
A group is *frozen* (never pruned) when it touches the network input or output (the
classifier's classes), a grouped conv that is not depthwise, a per-channel constant operand,
or any op this analysis does not know; ``frozen`` says why. The same groups tell quantization
which tensors are tied (``ChannelGroup.values``), so tied tensors can share exponents.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pqc.ir import Graph, Node

#: ops that apply independently per channel: output layout = input layout
PER_CHANNEL_OPS = frozenset({
    "Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Identity", "Dropout",
    "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
})
#: binary ops whose two activation operands are tied channel by channel
TYING_OPS = frozenset({"Add", "Sub", "Mul", "Div"})


@dataclass(frozen=True)
class Segment:
    """One group's run along a value's axis 1: ``repeat`` features per group channel."""

    group: int
    repeat: int = 1


@dataclass
class ChannelGroup:
    """Channels pruned together.

    ``producers``: (node, channel offset) of the Conv/Gemm nodes whose output channels (weight
    rows, bias) are this group, depthwise convs included; ``bns``: (BatchNormalization node,
    channel offset) normalizing them; ``members``: (value, feature offset, repeat) of every
    tensor carrying them; ``frozen``: why it must keep every channel, None when prunable.
    """

    id: int
    size: int
    producers: list[tuple[str, int]] = field(default_factory=list)
    bns: list[tuple[str, int]] = field(default_factory=list)
    members: list[tuple[str, int, int]] = field(default_factory=list)
    frozen: str | None = None

    @property
    def prunable(self) -> bool:
        return self.frozen is None

    @property
    def values(self) -> list[str]:
        """The tensors that carry this group's channels (tied for quantization too)."""
        return [name for name, _, _ in self.members]


@dataclass
class ChannelDeps:
    """The groups of a graph and each activation's layout (its segments along axis 1)."""

    groups: list[ChannelGroup]
    layouts: dict[str, tuple[Segment, ...]]

    def prunable(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.prunable]

    def channels(self, counts: dict[int, int]) -> dict[str, int]:
        """Axis-1 length of every laid-out value when group ``g`` keeps ``counts.get(g, size)`` channels."""
        return {
            name: sum(counts.get(s.group, self.groups[s.group].size) * s.repeat for s in layout)
            for name, layout in self.layouts.items()
        }

    def positions(self, keep: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        """Kept axis-1 indices of every laid-out value when group ``g`` keeps channels ``keep[g]``
        (sorted indices into the group; groups not in ``keep`` keep all)."""
        out: dict[str, np.ndarray] = {}
        for name, layout in self.layouts.items():
            parts, start = [], 0
            for s in layout:
                size = self.groups[s.group].size
                kept = np.asarray(keep.get(s.group, np.arange(size)), dtype=np.int64)
                parts.append((start + kept[:, None] * s.repeat + np.arange(s.repeat)[None, :]).ravel())
                start += size * s.repeat
            out[name] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return out


def channel_groups(graph: Graph) -> ChannelDeps:
    """The channel dependency groups of a float graph (see the module doc)."""
    return _Analysis(graph).run()


def is_depthwise(graph: Graph, node: Node) -> bool:
    """A Conv whose every group has one input and one output channel."""
    if node.op != "Conv":
        return False
    cin = graph.values[node.inputs[0]].shape[1]
    return node.attrs["group"] == cin == graph.values[node.outputs[0]].shape[1] and cin > 1


class _Analysis:
    """One pass over the nodes in order, with union-find over group ids for ties."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.parent: list[int] = []
        self.size: list[int] = []
        self.frozen: dict[int, str] = {}
        self.layouts: dict[str, tuple[Segment, ...]] = {}
        self.producers: list[tuple[int, str, int]] = []
        self.bns: list[tuple[int, str, int]] = []

    # ----------------------------------------------------------------- union-find
    def new_group(self, size: int, frozen: str | None = None) -> int:
        gid = len(self.parent)
        self.parent.append(gid)
        self.size.append(size)
        if frozen:
            self.frozen[gid] = frozen
        return gid

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.frozen:
                self.frozen.setdefault(ra, self.frozen[rb])

    def freeze(self, name: str, reason: str) -> None:
        for s in self.layouts.get(name, ()):
            self.frozen.setdefault(self.find(s.group), reason)

    # ----------------------------------------------------------------- layouts
    def activation(self, name: str) -> bool:
        return bool(name) and not self.graph.values[name].is_const

    def fresh(self, name: str, frozen: str | None = None) -> int | None:
        """Give ``name`` a layout of one new group (None for values without a channel axis)."""
        shape = self.graph.values[name].shape
        if len(shape) < 2:
            return None
        gid = self.new_group(shape[1], frozen)
        self.layouts[name] = (Segment(gid),)
        return gid

    def run(self) -> ChannelDeps:
        for name in self.graph.inputs:
            self.fresh(name, "network input")
        for node in self.graph.nodes:
            reason = self.visit(node)
            if reason is not None:
                for name in node.inputs:
                    if self.activation(name):
                        self.freeze(name, reason)
                for name in node.outputs:
                    self.fresh(name, reason)
        for name in self.graph.outputs:
            self.freeze(name, "network output")
        return self.result()

    def visit(self, node: Node) -> str | None:
        """Lay out ``node``'s outputs; return a reason to freeze everything it touches, or None."""
        g = self.graph
        x = node.inputs[0] if node.inputs else ""
        if len(node.outputs) != 1 or x not in self.layouts:
            return f"{node.op} node {node.name!r} has no channel layout pqc can follow"
        out = node.outputs[0]
        if node.op in ("Conv", "Gemm") and g.const(node.inputs[1]) is None:
            return f"{node.op} {node.name!r} has a non-constant weight"
        if node.op == "Conv":
            if node.attrs["group"] == 1:
                self.producers.append((self.fresh(out), node.name, 0))
                return None
            if is_depthwise(g, node):
                self.follow(node, self.producers)
                return None
            return f"grouped Conv {node.name!r} (group={node.attrs['group']}) is not depthwise"
        if node.op == "Gemm":
            if node.attrs["transA"]:
                return f"Gemm {node.name!r} has transA=1"
            self.producers.append((self.fresh(out), node.name, 0))
            return None
        if node.op in PER_CHANNEL_OPS:
            self.follow(node, self.bns if node.op == "BatchNormalization" else None)
            return None
        if node.op in TYING_OPS:
            return self.tie(node)
        if node.op == "Concat":
            if node.attrs["axis"] != 1 or not all(i in self.layouts for i in node.inputs):
                return f"Concat {node.name!r} is not a channel concat of activations"
            self.layouts[out] = tuple(s for i in node.inputs for s in self.layouts[i])
            return None
        if node.op == "Flatten" and node.attrs["axis"] == 1:
            spatial = int(np.prod(g.values[x].shape[2:], dtype=np.int64))
            self.layouts[out] = tuple(Segment(s.group, s.repeat * spatial) for s in self.layouts[x])
            return None
        return f"{node.op} node {node.name!r} is not understood by channel pruning"

    def follow(self, node: Node, record: list[tuple[int, str, int]] | None) -> None:
        """The output keeps the input's layout; ``record`` notes (group, node, offset) per segment."""
        layout = self.layouts[node.inputs[0]]
        self.layouts[node.outputs[0]] = layout
        if record is not None:
            offset = 0
            for s in layout:
                record.append((s.group, node.name, offset))
                offset += self.size[s.group]

    def tie(self, node: Node) -> str | None:
        acts = [i for i in node.inputs if self.activation(i)]
        for c in (i for i in node.inputs if i and not self.activation(i)):
            if self.graph.values[c].size != 1:
                return f"{node.op} {node.name!r} has a per-channel constant operand {c!r}"
        if any(i not in self.layouts for i in acts):
            return f"{node.op} {node.name!r} reads a value without channel layout"
        first = self.layouts[acts[0]]
        for other in acts[1:]:
            layout = self.layouts[other]
            if [self.size[s.group] * s.repeat for s in layout] != [self.size[s.group] * s.repeat for s in first]:
                return f"{node.op} {node.name!r} adds tensors laid out differently"
            for a, b in zip(first, layout):
                self.union(a.group, b.group)
        self.layouts[node.outputs[0]] = first
        return None

    # ----------------------------------------------------------------- result
    def result(self) -> ChannelDeps:
        roots = sorted({self.find(s.group) for layout in self.layouts.values() for s in layout})
        index = {root: i for i, root in enumerate(roots)}
        groups = [ChannelGroup(i, self.size[root], frozen=self.frozen.get(root)) for i, root in enumerate(roots)]
        layouts = {
            name: tuple(Segment(index[self.find(s.group)], s.repeat) for s in layout)
            for name, layout in self.layouts.items()
        }
        for record, attr in ((self.producers, "producers"), (self.bns, "bns")):
            for gid, node_name, offset in record:
                getattr(groups[index[self.find(gid)]], attr).append((node_name, offset))
        for name, layout in layouts.items():
            start = 0
            for s in layout:
                groups[s.group].members.append((name, start, s.repeat))
                start += groups[s.group].size * s.repeat
        for group in groups:
            if group.frozen is None and not group.producers:
                group.frozen = "no Conv/Gemm produces these channels"
        return ChannelDeps(groups, layouts)
