"""Liveness-based activation buffer planning for the integer IR.

Invariant established: every activation that needs storage gets an ``(offset, bytes)`` slot in one
arena such that no two buffers that are live at the same node overlap, offsets are aligned, and
the arena is as small as a greedy best-fit placement by decreasing size makes it (the "greedy by
size" planner of TFLite Micro). The C emitter turns the plan into pointer constants.

* Time is the node index in ``graph.nodes`` (a topological order). A buffer is live from the step
  of its producer to the step of its last reader; a graph output stays live to the end.
* ``QReshape`` moves no data: its output aliases its input, so reading the alias extends the life
  of the aliased buffer and the alias shares its slot.
* In place: an elementwise op (``QAdd``, ``QAffine``, ``QLut``: output element i depends only on
  input element i, and the kernels read it before writing it) writes over an input of the same
  byte size whose buffer dies at that op (TinyEngine's in-place reuse).
* With ``io_external`` (what the generated entry point does), every graph input lives in the
  caller's array for it and the buffer behind each graph output in the caller's array for that
  output, so none takes arena space (``MemoryPlan.io`` says which array holds which value).
* A node may ask for scratch: a buffer live only at that node's step, named
  ``"<node name>:scratch"``.
* A node whose kernel may write its output over its first input (``overwrites``: a conv reading
  its input through a ring band, `pqc.backends.c_tables.band_geometry`) is in place by the same
  rule as an elementwise op, decided per node because it depends on the kernel and the shapes.
* A row-streamed chain (`pqc.backends.streaming`) runs as one call over its steps: its streamed
  values take no storage (their rows live in the consumer's band, the consumer's scratch), its
  reads count at its last step, its scratch and its output live over all its steps, and its
  last node writes over an input that dies there only where `overwrite_safe` proves the row
  order allows it.
* ``arena_lower_bound_bytes`` is the most bytes (each buffer rounded up to ``align``) live at
  one step under these same rules: no placement of this schedule does better, so the gap to
  ``arena_bytes`` is what the greedy placement loses to fragmentation and the rest is what a
  different schedule (not a better planner) would have to win.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Mapping

import numpy as np

from pqc.intops import get_int_op
from pqc.ir import Graph, Node

from .activation_layout import packed_bits, packed_nbytes
from .streaming import overwrite_safe, stream_spans, streamed_values, streams

INPUT, OUTPUT = "input", "output"


def scratch_name(node_name: str) -> str:
    """Name of the scratch buffer a node asked for."""
    return f"{node_name}:scratch"


def value_bytes(graph: Graph, name: str) -> int:
    """Bytes of a value's storage: packed fields (`pqc.backends.activation_layout`) or elements."""
    v = graph.values[name]
    bits = packed_bits(v)
    return packed_nbytes(v.size, bits) if bits else v.size * np.dtype(v.dtype).itemsize


def _last_reads(graph: Graph) -> dict[str, int]:
    """The last step reading each value (a stream's reads at its last step); graph outputs are
    read at the end (step ``len(nodes)``)."""
    spans = stream_spans(graph)
    last = {i: spans.get(step, (step, step))[1] for step, node in enumerate(graph.nodes) for i in node.inputs if i}
    last.update({o: len(graph.nodes) for o in graph.outputs})
    return last


def storage_roots(graph: Graph, in_place: bool = True, overwrites: Collection[str] = ()) -> dict[str, str]:
    """Map every activation to the value whose storage it uses: a reshape's input's, with
    ``in_place`` the storage of an input of an ``in_place`` op (`pqc.intops.IntOpDef`; not the graph input) of equal
    byte size and layout that nothing reads after that node (for the nodes in ``overwrites``: their first
    input; for the last node of a stream: where `overwrite_safe`), else its own. A streamed value is
    its own root but has no storage (`pqc.backends.streaming`)."""
    last = _last_reads(graph)
    virtual = streamed_values(graph)
    chains = {chain[-1]: chain for chain in streams(graph)}
    root = {name: name for name in graph.inputs}
    members: dict[str, list[str]] = {name: [name] for name in graph.inputs}
    for step, node in enumerate(graph.nodes):
        for out in node.outputs:
            target = out
            if get_int_op(node.op).aliases_input:
                target = root[node.inputs[0]]
            elif in_place and (get_int_op(node.op).in_place or node.name in overwrites):
                candidates = node.inputs if get_int_op(node.op).in_place else node.inputs[:1]
                target = next(
                    (r for r in (root.get(i) for i in candidates if i not in virtual)
                     if r is not None and r not in graph.inputs
                     and value_bytes(graph, r) == value_bytes(graph, out)
                     and packed_bits(graph.values[r]) == packed_bits(graph.values[out])
                     and all(last.get(m, -1) <= step for m in members[r])
                     and (node.name not in chains or overwrite_safe(graph, chains[node.name], set(members[r])))),
                    out,
                )
            root[out] = target
            members.setdefault(target, []).append(out)
    return root


@dataclass(frozen=True)
class MemoryPlan:
    """Where each activation lives.

    ``buffers`` maps every activation and scratch buffer placed in the arena to ``(offset,
    bytes)`` (an alias maps to its root's slot); ``external`` maps values that live in the
    caller's arrays to ``"input"`` or ``"output"``; ``roots`` maps every activation to the value
    whose storage it uses (`storage_roots`); ``io`` maps each of those values to the graph input
    or output whose caller array holds it; ``lifetimes`` holds the ``(first, last)`` live step
    of every arena buffer root; ``arena_lower_bound_bytes`` the most aligned bytes live at once
    (`live_lower_bound`).
    """

    arena_bytes: int
    buffers: dict[str, tuple[int, int]]
    roots: dict[str, str]
    external: dict[str, str] = field(default_factory=dict)
    lifetimes: dict[str, tuple[int, int]] = field(default_factory=dict)
    align: int = 4
    arena_lower_bound_bytes: int = 0
    io: dict[str, str] = field(default_factory=dict)
    #: the nodes (of those allowed to, besides the in-place ops) that write over their first input
    overwrites: frozenset[str] = frozenset()


def _lifetimes(graph: Graph, root: dict[str, str], scratch: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    end = len(graph.nodes)
    spans = stream_spans(graph)
    life: dict[str, list[int]] = {name: [-1, -1] for name in graph.inputs}
    for step, node in enumerate(graph.nodes):
        first, last = spans.get(step, (step, step))
        for name in node.inputs:
            if name in root:
                life[root[name]][1] = max(life[root[name]][1], last)
        for out in node.outputs:
            if root[out] == out:
                life[out] = [first, last]
        if scratch.get(node.name, 0) > 0:
            life[scratch_name(node.name)] = [first, last]
    for name in graph.outputs:
        life[root[name]][1] = end
    return {k: (a, b) for k, (a, b) in life.items()}


def _place(sizes: dict[str, int], life: dict[str, tuple[int, int]], align: int) -> dict[str, int]:
    """Greedy by size: largest first, into the tightest gap among time-overlapping buffers."""
    placed: list[tuple[int, int, str]] = []  # (offset, bytes, name)
    offsets: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], life[n][0], n)):
        size, (start, stop) = sizes[name], life[name]
        busy = sorted((o, o + b) for o, b, other in placed if life[other][0] <= stop and start <= life[other][1])
        best: tuple[int, int] | None = None  # (gap, offset)
        cursor = 0
        for lo, hi in busy:
            if lo - cursor >= size and (best is None or lo - cursor < best[0]):
                best = (lo - cursor, cursor)
            cursor = max(cursor, align_up(hi, align))
        offset = cursor if best is None else best[1]
        offsets[name] = offset
        placed.append((offset, size, name))
    return offsets


def align_up(n: int, align: int) -> int:
    """``n`` rounded up to a multiple of ``align``."""
    return -(-n // align) * align


def live_lower_bound(sizes: Mapping[str, int], life: Mapping[str, tuple[int, int]], align: int) -> int:
    """The largest sum of ``align``-rounded sizes of buffers live at one step: a bound every
    placement meets, since buffers live together are disjoint and start on aligned offsets."""
    steps = {s for a, b in life.values() for s in (a, b)}
    return max((sum(align_up(sizes[n], align) for n in sizes if life[n][0] <= s <= life[n][1]) for s in steps),
               default=0)


def plan_memory(
    graph: Graph,
    scratch: Mapping[str, int] | None = None,
    *,
    io_external: bool = True,
    in_place: bool = True,
    overwrites: Collection[str] = (),
    align: int = 4,
) -> MemoryPlan:
    """Plan the arena of ``graph``; ``scratch`` maps node names to the scratch bytes they need,
    ``overwrites`` names the nodes whose kernels may write their output over their first input."""
    scratch = dict(scratch or {})
    overwrites = frozenset(overwrites) if in_place else frozenset()
    root = storage_roots(graph, in_place, overwrites)
    external: dict[str, str] = {}
    io: dict[str, str] = {}
    if io_external:
        holder = {root[o]: o for o in reversed(graph.outputs)}  # two outputs on one root: the first's
        holder.update({i: i for i in graph.inputs})
        io = {v: holder[r] for v, r in root.items() if r in holder}
        external = {v: INPUT if r in graph.inputs else OUTPUT for v, r in root.items() if r in holder}
    life = _lifetimes(graph, root, scratch)
    virtual = streamed_values(graph)
    sizes = {r: value_bytes(graph, r) for r in set(root.values()) if r not in external and r not in virtual}
    sizes.update({scratch_name(n): b for n, b in scratch.items() if b > 0})
    offsets = _place(sizes, life, align)
    arena = align_up(max((offsets[n] + sizes[n] for n in sizes), default=0), align)
    buffers = {v: (offsets[r], sizes[r]) for v, r in root.items() if r in sizes}
    buffers.update({n: (offsets[n], sizes[n]) for n in sizes if n not in root})
    return MemoryPlan(arena, buffers, root, external, {n: life[n] for n in sizes}, align,
                      live_lower_bound(sizes, {n: life[n] for n in sizes}, align), io,
                      frozenset(n.name for n in graph.nodes if n.name in overwrites and root[n.outputs[0]] != n.outputs[0]))


def check_plan(graph: Graph, plan: MemoryPlan, scratch: Mapping[str, int] | None = None) -> None:
    """Raise ``ValueError`` unless ``plan`` is a valid placement for ``graph``.

    Re-derived here, independently of `plan_memory`'s bookkeeping: liveness per step (values
    read at or after the step that were produced at or before it; a stream writes its output
    from its first step, reads its inputs up to its last, and needs its scratch throughout), and
    that storage is shared only by a reshape with its input or by an in-place op with an input
    nothing reads later (at the end of a stream: in a row order that `overwrite_safe` allows).
    A streamed value has no buffer.
    """
    scratch = dict(scratch or {})
    root = plan.roots
    steps_of = stream_spans(graph)
    virtual = streamed_values(graph)
    for name, (offset, size) in plan.buffers.items():
        if offset % plan.align or offset < 0 or offset + size > plan.arena_bytes:
            raise ValueError(f"buffer {name!r} at [{offset}, {offset + size}) is misaligned or outside the arena")
    for name in graph.activations():
        if name in virtual:
            if name in plan.buffers or name in plan.external:
                raise ValueError(f"streamed value {name!r} has storage")
            continue
        if name not in plan.buffers and name not in plan.external:
            raise ValueError(f"activation {name!r} has no buffer")
        if name in plan.buffers and plan.buffers[name][1] < value_bytes(graph, name):
            raise ValueError(f"buffer of {name!r} is smaller than the value")
    producer = {name: -1 for name in graph.inputs}
    producer.update({o: steps_of.get(step, (step, step))[0] for step, node in enumerate(graph.nodes) for o in node.outputs})
    last = _last_reads(graph)
    chains = {chain[-1]: chain for chain in streams(graph)}
    for step, node in enumerate(graph.nodes):
        for out in node.outputs:
            _check_sharing(graph, root, producer, last, step, node, out, node.name in plan.overwrites)
            if node.name in chains and root[out] != out and not overwrite_safe(
                    graph, chains[node.name], {v for v, r in root.items() if r == root[out]}):
                raise ValueError(f"stream ending at {node.name!r} writes over {root[out]!r} rows that it still reads")
    readers: dict[str, set[int]] = {}
    for step, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name in root:
                readers.setdefault(root[name], set()).add(steps_of.get(step, (step, step))[1])
    for name in graph.outputs:
        readers.setdefault(root[name], set()).add(len(graph.nodes))
    for step, node in enumerate(graph.nodes):
        live = {
            r
            for r in set(root.values())
            if r in plan.buffers and producer[r] <= step and any(s >= step for s in readers.get(r, {producer[r]}))
        }
        first, end = steps_of.get(step, (step, step))
        live |= {scratch_name(n.name) for n in graph.nodes[first:end + 1] if scratch.get(n.name, 0) > 0}
        spans = sorted((plan.buffers[n][0], plan.buffers[n][0] + plan.buffers[n][1], n) for n in live)
        for (_, a_end, a), (b_start, _, b) in zip(spans, spans[1:]):
            if b_start < a_end:
                raise ValueError(f"buffers {a!r} and {b!r} overlap while both are live at node {node.name!r}")


def _check_sharing(graph: Graph, root: dict[str, str], producer: dict[str, int], last: dict[str, int], step: int,
                   node: Node, out: str, overwrites: bool) -> None:
    r = root[out]
    if r == out:
        return
    if get_int_op(node.op).aliases_input:
        if r != root[node.inputs[0]]:
            raise ValueError(f"reshape {node.name!r}: output {out!r} does not alias its input")
        return
    writable = node.inputs if get_int_op(node.op).in_place else node.inputs[:1] if overwrites else []
    if r not in {root.get(i) for i in writable} or r in graph.inputs:
        raise ValueError(f"node {node.name!r} ({node.op}) cannot write {out!r} over the storage of {r!r}")
    for v, vr in root.items():
        if vr == r and v != out and producer[v] < step and last.get(v, -1) > step:
            raise ValueError(f"node {node.name!r} overwrites {v!r} in place, but step {last[v]} still reads it")


def live_buffers(plan: MemoryPlan, step: int) -> tuple[str, ...]:
    """The arena buffers (storage roots and scratch) live at ``step`` by ``plan.lifetimes``: those
    whose bytes count towards `live_lower_bound` there."""
    return tuple(sorted(n for n, (first, last) in plan.lifetimes.items() if first <= step <= last))


def poison_ranges(plan: MemoryPlan, step: int) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` byte ranges of the arena that no read at or after ``step`` may depend on
    by ``plan``: everything but the buffers of values produced before ``step`` and read at or
    after it. The step's own output and scratch are included: a kernel writes them before it
    reads them (an in-place output shares an input's buffer, so it is kept)."""
    kept = sorted((plan.buffers[n][0], plan.buffers[n][0] + plan.buffers[n][1])
                  for n, (first, last) in plan.lifetimes.items() if first < step <= last)
    ranges, cursor = [], 0
    for lo, hi in kept:
        if lo > cursor:
            ranges.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < plan.arena_bytes:
        ranges.append((cursor, plan.arena_bytes))
    return ranges
