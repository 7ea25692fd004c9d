"""range_analysis: prove that every integer the program computes fits int32.

Interval analysis over an integer graph in node order: each op's `IntOpDef.bounds` maps its
input intervals to its output interval and the intervals of every intermediate the C computes
(accumulators, aligned operands, rounding adds, left-shifted values, shift-add partial sums).
Graph inputs span their format's range. The results stay in ``node.meta["range"]`` (``"out"``
and each intermediate, as ``(lo, hi)`` Python ints) for the report. Any interval outside
``[-2^31 + 1, 2^31 - 1]`` refuses the model with a `ModelError` naming the layer and the bound
(the symmetric limit keeps negation and ``abs`` safe in C), and says which option fixes it
(`fix_hint`).
"""
from __future__ import annotations

from pqc.intmath import INT32_MAX, value_range
from pqc.intops import Interval, get_int_op
from pqc.errors import ModelError
from pqc.ir import Graph, Node


def analyze_ranges(graph: Graph) -> dict[str, Interval]:
    """Annotate every node of the integer ``graph`` in place; return each activation's interval.

    Raises `ModelError` when an accumulator or intermediate may leave int32.
    """
    ranges: dict[str, Interval] = {
        name: value_range(graph.values[name]) for name in graph.inputs
    }
    for node in graph.nodes:
        op = get_int_op(node.op)
        in_ranges = [ranges.get(i) for i in node.inputs]
        b = op.bounds(node, graph, in_ranges)
        report = {**b.intermediates, "out": b.outputs[0]}  # causes first: a clamped "out" only echoes them
        for what, (lo, hi) in report.items():
            if max(-lo, hi) > INT32_MAX:
                raise ModelError(
                    f"layer {node.name!r} ({node.op}): {what} may reach [{lo}, {hi}], beyond int32 "
                    f"(|v| <= {INT32_MAX}); {fix_hint(node.name, _weight_bits(node, graph))}"
                )
        node.meta["range"] = report
        ranges.update(zip(node.outputs, b.outputs))
    return ranges



def fix_hint(layer: str, weight_bits: int | None) -> str:
    """The option that shrinks the integers of ``layer``: fewer weight bits for a weighted layer
    (its exponents get coarser, so its integer bias and accumulator shrink), else fewer
    activation bits."""
    if weight_bits is None:
        return "fix: use fewer activation bits (--abits, or --first-last-bits next to the first and last layers)"
    return (f"fix: give this layer fewer weight bits than its {weight_bits}: --layer-bits {layer}=B "
            f"(Python: QuantizeOptions(layer_bits={{{layer!r}: B}})), or --wbits / --first-last-bits for all layers")


def _weight_bits(node: Node, graph: Graph) -> int | None:
    """The weight bits of an integer layer (its weight constant carries a ``format``), or None."""
    weight = graph.values.get(node.inputs[1]) if len(node.inputs) > 1 else None
    return weight.meta["bits"] if weight is not None and "format" in weight.meta else None
