"""Integer IR ops: one `IntOpDef` per op, registered by name, holding every face side by side.

This is the integer contract between the simulator and the C, so it lives in the core: the IR's
verifier, the passes (lowering, range analysis) and every backend read it; it imports nothing
from a backend. How an op becomes C is a backend matter (`pqc.backends.kernels`).

The integer program reuses `pqc.ir.Graph`. Every activation `Value` has dtype ``"int8"``,
``"uint8"`` or ``"int32"`` and ``meta["exp"]`` (real value = q * 2**exp), ``meta["bits"]`` and
``meta["signed"]``; constants are integer numpy arrays. Attributes are plain ints and tuples of
ints (small per-channel vectors); large tables (weights, biases, LUTs) are constant inputs.

An op's faces:

* ``simulate(node, inputs)``: exact batched semantics on integer numpy arrays (the golden model;
  `pqc.backends.simulator` dispatches here);
* ``bounds(node, graph, in_ranges)``: interval analysis (`pqc.passes.range_analysis` dispatches
  here): the output interval and every intermediate the C computes, each of which must fit int32;
* ``cost(node, graph)``: for reports, per sample: ``adds`` (add, subtract and compare ALU
  operations), ``shifts``, ``dense_weight_bytes`` (the constants stored densely: weights at their
  bit width, 32-bit biases and multipliers, tables at their type), ``digits`` (the nonzero NAF
  digits of the op's constant multipliers: weights, reciprocals, scales) and ``ideal_adds`` (a
  weighted layer's weight digits times its output positions, DESIGN.md "Multiplier-free weights");
* ``infer_shapes(node, graph)``: output shapes, derived from ``simulate`` (for verifiers);
* facts the memory planner and emitters read: ``aliases_input`` (the output is input 0's storage
  viewed in another shape: no data moves) and ``in_place`` (output element i depends only on
  input element i of the same shape, so the output may overwrite an input that dies here).

Rounding everywhere is `pqc.intmath.rshift_round` (half up) and clamps come last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..intmath import rshift_round
from ..registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..ir import Graph, Node

Interval = tuple[int, int]


@dataclass
class Bounds:
    """What `IntOpDef.bounds` proves: one interval per output and the named intermediates."""

    outputs: list[Interval]
    intermediates: dict[str, Interval] = field(default_factory=dict)


class IntOpDef:
    """Base class of integer ops. Subclasses set ``name`` and override ``simulate`` and
    ``bounds``; ``cost`` defaults to free (data movement)."""

    name: str = ""
    #: the output is input 0's storage in another shape (no data moves)
    aliases_input: bool = False
    #: output element i depends only on input element i: the output may overwrite such an input
    in_place: bool = False

    def simulate(self, node: "Node", inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def bounds(self, node: "Node", graph: "Graph", in_ranges: Sequence[Interval | None]) -> Bounds:
        raise NotImplementedError

    def cost(self, node: "Node", graph: "Graph") -> dict[str, int]:
        return make_cost()

    def infer_shapes(self, node: "Node", graph: "Graph") -> list[tuple[int, ...]]:
        """Output shapes, from ``simulate`` on zeros (so shape rules cannot drift from semantics)."""
        ins = [graph.values[i].data if graph.values[i].is_const else np.zeros(graph.values[i].shape, np.int64)
               for i in node.inputs]
        return [tuple(int(d) for d in o.shape) for o in self.simulate(node, ins)]


INT_OPS: Registry[IntOpDef] = Registry("integer op")
#: class decorator: instantiate and register an IntOpDef under its ``name``
register = INT_OPS.register
get_int_op = INT_OPS.get


# ------------------------------------------------------------------ helpers shared by the ops
def make_cost(adds: int = 0, shifts: int = 0, dense_weight_bytes: int = 0, digits: int = 0,
              ideal_adds: int = 0) -> dict[str, int]:
    """The dict every ``cost`` returns (plain ints, every key present)."""
    return {"adds": int(adds), "shifts": int(shifts), "dense_weight_bytes": int(dense_weight_bytes),
            "digits": int(digits), "ideal_adds": int(ideal_adds)}


def requant_bounds(accs: Sequence[Interval], shifts: Sequence[int], lo: int, hi: int) -> tuple[Interval, dict[str, Interval]]:
    """Bounds of ``clamp(rshift_round(acc[c], shift[c]), lo, hi)`` over channels ``c``.

    ``accs`` and ``shifts`` are per channel (either may have length 1 and is then broadcast).
    Returns the output interval and the intermediates the rounding step computes, which must
    fit int32 too: ``round`` (``acc + 2^(s-1)`` where ``s > 0``) and ``shifted`` (``acc << -s``
    where ``s < 0``).
    """
    n = max(len(accs), len(shifts))
    pairs = [(accs[i if len(accs) > 1 else 0], int(shifts[i if len(shifts) > 1 else 0])) for i in range(n)]
    inter: dict[str, Interval] = {}
    outs: list[int] = []
    for (a_lo, a_hi), s in pairs:
        if s > 0:
            _widen(inter, "round", (a_lo + (1 << (s - 1)), a_hi + (1 << (s - 1))))
        elif s < 0:
            _widen(inter, "shifted", (a_lo << -s, a_hi << -s))
        outs += [rshift_round(a_lo, s), rshift_round(a_hi, s)]
    return (min(max(min(outs), lo), hi), min(max(max(outs), lo), hi)), inter


def _widen(d: dict[str, Interval], key: str, r: Interval) -> None:
    """Grow ``d[key]`` to cover ``r``."""
    old = d.get(key, r)
    d[key] = (min(old[0], r[0]), max(old[1], r[1]))


def hull(rs: Sequence[Interval]) -> Interval:
    """The smallest interval covering all of ``rs``."""
    return min(r[0] for r in rs), max(r[1] for r in rs)


def abs_max(r: Interval) -> int:
    return max(abs(r[0]), abs(r[1]))


def output_elements(node: "Node", graph: "Graph", index: int = 0) -> int:
    """Elements of one sample of the node's output (the C entry point runs one sample)."""
    shape = graph.values[node.outputs[index]].shape
    return int(np.prod(shape[1:], dtype=np.int64))


# Registration side effects: each module defines and registers one op.
from . import (  # noqa: E402,F401
    qadd,
    qaffine,
    qavgpool,
    qconcat,
    qconv,
    qgemm,
    qglobalavgpool,
    qlut,
    qmaxpool,
    qmul,
    qpermute,
    qreshape,
)
