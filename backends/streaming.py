"""Row-streamed execution of layer chains: the schedule that keeps only a few rows of a layer's
output instead of the whole tensor (MCUNetV2's patch-based inference, by rows).

A *stream* is a chain of nodes ``n0 -> n1 -> ... -> nk`` run row by row from its last node:
producing output row ``oy`` of ``nk`` first produces, of ``nk-1``, just the rows that row reads,
and so on up the chain. Every value between two chain nodes is *streamed*: it has no storage of
its own; its producer writes each row straight into its consumer's band (the rows of input that
a conv kernel's windows read, `pqc.backends.c_tables.band_geometry`), which thus replaces the
whole tensor by ``band_rows`` rows. A conv–conv pair of a residual block keeps one band between
the two convs, and a final ``QAdd`` takes its streamed operand one row at a time (a row buffer)
and may write its result over its other operand, the skip connection, row by row.

Which chains can stream (`stream_candidates`):

* the head ``n0`` is a QConv reading a stored value;
* each later conv ``ni`` reads, as its only activation input, the output of ``ni-1``, which
  nothing else reads and which is no graph output, and moves its windows by at most its band's
  height per output row (so its producer's rows are all used, in order: a 1x1 conv of stride
  2 is not fed);
* a QAdd may end a chain, fed by one operand (the other is stored, of the same shape).

`stream_layers` records a choice of chains on a copy of the program: the chain nodes are moved
together in the node order, each node's ``meta[STREAM]`` is ``(stream, position)``, each
streamed value's ``meta[STREAMED]`` is True and ``graph.meta[STREAMS]`` lists the chains. The
integers do not change (the simulator ignores all of it); the arena planner
(`pqc.backends.memory_plan`) gives streamed values no storage and keeps a stream's scratch
(bands, row buffers) and inputs live for all its steps; the C emitter emits one driver per
stream (``codegen_templates/stream.c.j2``) that calls the nodes' row functions.

`row_events` replays a stream's row order exactly as the driver runs it, asserting that every
band row holds the input row its consumer expects, and lists the reads and writes of stored
rows, so `overwrite_safe` can prove that the last node may write over an input row by row.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import InternalError, PqcError
from ..ir import Graph, Node

#: node meta: ``(stream index, position in the chain)``
STREAM = "stream"
#: value meta: True for a value held only as rows of its consumer's band
STREAMED = "streamed"
#: graph meta: the chains, as lists of node names
STREAMS = "streams"


def stream_position(node: Node) -> tuple[int, int] | None:
    """``(stream, position)`` of a node in a stream, None when it runs layer by layer."""
    where = node.meta.get(STREAM)
    return None if where is None else (int(where[0]), int(where[1]))


def is_fed(node: Node) -> bool:
    """Whether the node reads its first input from a band its producer fills (not the stream head)."""
    where = stream_position(node)
    return where is not None and where[1] > 0


def streams(graph: Graph) -> list[tuple[str, ...]]:
    """The program's streams, each its chain of node names in order."""
    return [tuple(chain) for chain in graph.meta.get(STREAMS, [])]


def streamed_values(graph: Graph) -> frozenset[str]:
    """The values that have no storage: held only as rows in their consumer's band."""
    return frozenset(name for name, v in graph.values.items() if v.meta.get(STREAMED))


def stream_spans(graph: Graph) -> dict[int, tuple[int, int]]:
    """Each stream node's step mapped to ``(first, last)``: the steps of its whole stream, which
    runs as one call (at ``first``), so its reads last and its scratch lives until ``last``."""
    step = {node.name: i for i, node in enumerate(graph.nodes)}
    spans: dict[int, tuple[int, int]] = {}
    for chain in streams(graph):
        first, last = step[chain[0]], step[chain[-1]]
        spans.update({step[n]: (first, last) for n in chain})
    return spans


@dataclass(frozen=True)
class _Rows:
    """What the driver needs to know of one chain node's rows: ``kind`` "conv" or "add"; for a
    conv its input height ``h``, stride ``sh``, band height ``rows`` (the rows a window spans),
    top padding ``pad_t``, whether its band is a ring (reads one new input row per output row),
    and the output rows ``oh``."""

    kind: str
    h: int
    sh: int
    rows: int
    pad_t: int
    ring: bool
    oh: int


def _rows(graph: Graph, node: Node) -> _Rows:
    from .c_tables import conv_band

    y = graph.values[node.outputs[0]]
    if node.op == "QAdd":
        return _Rows("add", y.shape[2], 1, 1, 0, False, y.shape[2])
    geo = conv_band(node, graph)
    rows = geo["band_rows"] if geo["band"] else _fed_rows(node)
    return _Rows("conv", geo["h"], node.attrs["strides"][0], rows, geo["pad_t"], geo["ring"], geo["oh"])


def _readers(graph: Graph) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            if name:
                out.setdefault(name, []).append(node)
    return out


def _activation_inputs(graph: Graph, node: Node) -> list[str]:
    return [i for i in node.inputs if i and not graph.values[i].is_const]


def _link(graph: Graph, readers: dict[str, list[Node]], producer: Node, consumer: Node) -> bool:
    """Whether ``consumer`` can be fed row by row from ``producer`` (see the module docstring)."""
    out = producer.outputs[0]
    if producer.op != "QConv" or out in graph.outputs or [n.name for n in readers.get(out, [])] != [consumer.name]:
        return False
    ins = _activation_inputs(graph, consumer)
    if consumer.op == "QConv":
        if ins != [out]:
            return False
        return consumer.attrs["strides"][0] <= _fed_rows(consumer)
    if consumer.op == "QAdd":
        return len(ins) == 2 and out in ins and ins[0] != ins[1] \
            and tuple(graph.values[ins[0]].shape) == tuple(graph.values[ins[1]].shape)
    return False


def _fed_rows(node: Node) -> int:
    """The band height of a fed conv: the input rows one output row's windows span."""
    kh = node.attrs["kernel_shape"][0]
    dh = node.attrs.get("dilations", (1, 1))[0]
    return dh * (kh - 1) + 1


def stream_candidates(graph: Graph) -> list[tuple[str, ...]]:
    """The maximal chains of ``graph`` that can stream (module docstring), in node order; a QAdd
    fed by two convs takes the one with the longer chain behind it (the later on a tie)."""
    readers = _readers(graph)
    by_name = {n.name: n for n in graph.nodes}
    producer = {o: n for n in graph.nodes for o in n.outputs}
    step = {n.name: i for i, n in enumerate(graph.nodes)}
    feeder: dict[str, str] = {}  # consumer -> the producer feeding it
    depth: dict[str, int] = {}
    for node in graph.nodes:  # topological order: a producer's depth is known before its consumer's
        links = [producer[i] for i in _activation_inputs(graph, node)
                 if i in producer and _link(graph, readers, producer[i], node)]
        if links:
            best = max(links, key=lambda p: (depth[p.name], step[p.name]))
            feeder[node.name] = best.name
            depth[node.name] = depth[best.name] + 1
        else:
            depth[node.name] = 0
    fed_by = {p: c for c, p in feeder.items()}
    chains = []
    for node in graph.nodes:
        if node.name in feeder or node.name not in fed_by:
            continue
        chain = [node.name]
        while chain[-1] in fed_by:
            chain.append(fed_by[chain[-1]])
        chains.append(tuple(chain))
    return [c for c in chains if by_name[c[0]].op == "QConv"]


def stream_layers(graph: Graph, chains: Iterable[Sequence[str]]) -> Graph:
    """A copy of the integer program scheduled with ``chains`` streamed (module docstring).

    Each chain must be one that `stream_candidates` could return, or a contiguous part of one
    of at least two nodes; the chain's nodes are moved to just before its last node, which is
    a valid order since each reads only its predecessor's output (and stored values)."""
    out = copy.deepcopy(graph)
    readers = _readers(out)
    chains = [tuple(c) for c in chains]
    by_name = {n.name: n for n in out.nodes}
    taken: set[str] = set()
    for chain in chains:
        if len(chain) < 2 or any(n not in by_name for n in chain) or taken & set(chain):
            raise PqcError(f"cannot stream {list(chain)}: a stream is at least two distinct nodes of the program, "
                           f"each in one stream")
        if by_name[chain[0]].op != "QConv" or any(not _link(out, readers, by_name[p], by_name[c])
                                                  for p, c in zip(chain, chain[1:])):
            raise PqcError(f"cannot stream {list(chain)}: each node must feed the next row by row "
                           f"(pqc.backends.streaming)")
        taken |= set(chain)
    existing = streams(out)
    if existing:
        raise PqcError(f"graph {out.name!r} is already streamed ({len(existing)} stream(s))")
    for index, chain in enumerate(chains):
        order = [n for n in out.nodes if n.name not in chain[:-1]]
        at = next(i for i, n in enumerate(order) if n.name == chain[-1])
        out.nodes[:] = order[:at] + [by_name[n] for n in chain[:-1]] + order[at:]
        for pos, name in enumerate(chain):
            by_name[name].meta[STREAM] = (index, pos)
        for name in chain[:-1]:
            out.values[by_name[name].outputs[0]].meta[STREAMED] = True
    out.meta[STREAMS] = [list(c) for c in chains]
    for chain in chains:
        row_events(out, chain)  # asserts that the driver's band rows are the ones each node reads
    return out


def row_events(graph: Graph, chain: Sequence[str]) -> list[tuple[str, str, int]]:
    """The stored rows a stream reads and writes, in the order its C driver runs them:
    ``("read", value, row)`` for the head's input rows (as its band gathers them, or read in
    place when unpadded) and an add's stored operand, ``("write", value, row)`` for the last
    node's output rows. Raises `InternalError` if a fed band would hold another row than the
    one its consumer's windows read (the driver's invariant)."""
    nodes = [next(n for n in graph.nodes if n.name == name) for name in chain]
    rows = [_rows(graph, n) for n in nodes]
    produced = [0] * len(nodes)
    events: list[tuple[str, str, int]] = []
    head_in = nodes[0].inputs[0]

    def read_head(p: int) -> None:
        g = rows[0]
        first = p * g.sh - g.pad_t
        span = [first + g.rows - 1] if g.ring and p > 0 else range(first, first + g.rows)
        events.extend(("read", head_in, q) for q in span if 0 <= q < g.h)

    def feed(i: int) -> None:
        g, p = rows[i], produced[i]
        slots = range(g.rows) if p == 0 else range(g.rows - g.sh, g.rows)
        for s in slots:
            want = p * g.sh - g.pad_t + s
            if want < 0 or produced[i - 1] >= g.h:
                if 0 <= want < g.h:
                    raise InternalError(f"stream {list(chain)}: {chain[i]} row {p} needs input row {want}, "
                                        f"which its producer never writes")
                continue
            if produced[i - 1] != want:
                raise InternalError(f"stream {list(chain)}: {chain[i]} row {p} band slot {s} would hold row "
                                    f"{produced[i - 1]} instead of {want}")
            next_row(i - 1)

    def next_row(i: int) -> None:
        p = produced[i]
        if i == 0:
            read_head(p)
        elif rows[i].kind == "conv":
            feed(i)
        else:  # the add: its streamed operand's row, then its stored operand's
            if produced[i - 1] != p:
                raise InternalError(f"stream {list(chain)}: the add's row {p} would meet operand row {produced[i - 1]}")
            next_row(i - 1)
            stored = next(v for v in _activation_inputs(graph, nodes[i]) if v != nodes[i - 1].outputs[0])
            events.append(("read", stored, p))
        if i == len(nodes) - 1:
            events.append(("write", nodes[i].outputs[0], p))
        produced[i] += 1

    for _ in range(rows[-1].oh):
        next_row(len(nodes) - 1)
    return events


def overwrite_safe(graph: Graph, chain: Sequence[str], target: str) -> bool:
    """Whether the stream's last node may write its output over the stored value ``target`` (of
    its shape) row by row: no row of ``target`` is read after the output row over it is written."""
    written: set[int] = set()
    for kind, value, row in row_events(graph, chain):
        if kind == "write":
            written.add(row)
        elif value == target and row in written:
            return False
    return True
