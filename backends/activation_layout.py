"""Packed sub-byte activations: which arena values hold two (A4) or four (A2) values per byte.

A value whose integer range fits ``bits`` = 4 (or 2) bits is stored as ``bits``-bit fields, element
``i`` in byte ``i * bits // 8`` at bit ``(i mod 8/bits) * bits``, low bits first (two's complement
fields when the value's range has negatives, plain otherwise: `signed_fields`), the element order of the unpacked value unchanged
(so a reshape still aliases). The integers are those of the unpacked program: only where they
are kept changes, so the arena of a W4A4 model is about half that of W8A8.

A value is packed only where every kernel that touches it reads and writes that layout
(``KernelDef.packed_io``) and it lives in the arena: the caller's input and output arrays keep
one value per byte, as ``<prefix>.h`` declares them. The decision is recorded in the value's
``meta[PACKED_BITS]`` by `pack_activations`, a pure pass over the integer program that the C
emitter, the arena planner and the harness read.
"""
from __future__ import annotations

import copy

import numpy as np

from pqc.intmath import value_range
from pqc.intops import get_int_op
from pqc.ir import Graph, Value

from .streaming import streamed_values

#: meta key of a value's field width in bits (absent: one value per byte or word)
PACKED_BITS = "packed_bits"
#: the field widths a value may be packed at, narrowest first
WIDTHS = (2, 4)


def packed_bits(value: Value) -> int:
    """The value's field width, 0 when it is not packed."""
    return int(value.meta.get(PACKED_BITS, 0))


def packed_nbytes(size: int, bits: int) -> int:
    """Bytes of ``size`` fields of ``bits`` bits."""
    return -(-size * bits // 8)


def signed_fields(value: Value) -> bool:
    """Whether the value's fields are two's complement: its range has negatives (an int8 value
    of range 0..15 takes plain 4-bit fields)."""
    return value_range(value)[0] < 0


def field_width(value: Value) -> int:
    """The narrowest width of `WIDTHS` that holds the value's integer range, 0 for none (or
    an int32 value)."""
    if value.dtype not in ("int8", "uint8"):
        return 0
    lo, hi = value_range(value)
    for bits in WIDTHS:
        if (lo >= -(1 << bits - 1) and hi < 1 << bits - 1) if lo < 0 else hi < 1 << bits:
            return bits
    return 0


def pack_activations(graph: Graph) -> Graph:
    """A copy of the integer program with `PACKED_BITS` set on every value that can be packed
    and gains from it: it fits a field (`field_width`), is no graph input or output nor streamed
    (`pqc.backends.streaming`: its rows live unpacked in a band), every
    kernel of the ops of its producer and readers has ``packed_io`` (so kernel selection,
    before or after, may pick any variant), and its producer could not otherwise write it over
    an unpacked input that dies there (`_keeps_in_place`). A reshape and its input share their
    bytes, so they are packed alike or not at all."""
    from .kernels import KERNELS  # the kernels' modules import this one's helpers

    packs = {op: all(k.packed_io for k in KERNELS.values() if k.op == op) for op in {n.op for n in graph.nodes}}
    out = copy.deepcopy(graph)
    touching: dict[str, list] = {}
    for node in out.nodes:
        for name in [*node.inputs, *node.outputs]:
            if name:
                touching.setdefault(name, []).append(node)
    root = {name: name for name in out.inputs}
    for node in out.nodes:
        alias = get_int_op(node.op).aliases_input
        root[node.outputs[0]] = root[node.inputs[0]] if alias else node.outputs[0]
    classes: dict[str, list[str]] = {}
    for name in out.activations():
        classes.setdefault(root[name], []).append(name)
    last = {root[i]: step for step, node in enumerate(out.nodes) for i in node.inputs if i in root}
    last.update({root[o]: len(out.nodes) for o in out.outputs})
    boundary = set(out.inputs) | set(out.outputs) | streamed_values(out)  # streamed: rows in a band, no storage
    for step, node in enumerate(out.nodes):
        members = classes.get(node.outputs[0], [])  # empty for a reshape: its input's class decided
        widths = {field_width(out.values[m]) for m in members}
        width = widths.pop() if len(widths) == 1 else 0
        if (width and not boundary & set(members) and all(packs[n.op] for m in members for n in touching.get(m, []))
                and not _keeps_in_place(out, node, step, root, last)):
            for m in members:
                out.values[m].meta[PACKED_BITS] = width
    return out


def _keeps_in_place(graph: Graph, node, step: int, root: dict[str, str], last: dict[str, int]) -> bool:
    """Whether ``node`` could write its output, unpacked, over an unpacked input of its size that
    dies there (an in-place op's, or a stride-1 conv's through its ring band,
    `pqc.backends.c_tables.band_geometry`), and over no packed one: packing the output would
    then cost that sharing, a whole output, to save half of one."""
    from .c_tables import conv_band

    y = graph.values[node.outputs[0]]
    if get_int_op(node.op).in_place:
        candidates = [i for i in node.inputs if i and not graph.values[i].is_const]
    elif node.op == "QConv":
        geo = conv_band(node, graph)
        candidates = node.inputs[:1] if geo["writes_over_input"] else []
    else:
        return False
    dying = [graph.values[i] for i in candidates if root[i] not in graph.inputs and last.get(root[i]) == step
             and graph.values[i].size == y.size and np.dtype(graph.values[i].dtype).itemsize == np.dtype(y.dtype).itemsize]
    return any(not packed_bits(v) for v in dying) and not any(packed_bits(v) for v in dying)


def unpack(raw: np.ndarray, dtype: str, size: int, bits: int, signed: bool) -> np.ndarray:
    """The ``size`` values of ``dtype`` held in the packed bytes ``raw`` (uint8, last axis: one
    packed value; leading axes, e.g. samples, kept), two's complement fields if ``signed``."""
    per = 8 // bits
    shifts = (np.arange(per, dtype=np.uint8) * bits)
    fields = (raw[..., :, None] >> shifts) & ((1 << bits) - 1)
    fields = fields.reshape(*raw.shape[:-1], -1)[..., :size].astype(np.int16)
    if signed:
        fields = (fields ^ (1 << bits - 1)) - (1 << bits - 1)
    return fields.astype(np.int8 if dtype == "int8" else np.uint8)
