"""Importers of elementwise ops: activations and broadcasting arithmetic.

A multiplier-free target can only multiply or divide by constants, so Mul and Div need one
constant operand, normalized to the second position (Div by a constant only).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Node
from .registry import OnnxNode, importer


def _simple(op: str) -> None:
    """Register an importer for an attribute-free op that maps one-to-one onto the IR."""

    @importer(op)
    def _import(n: OnnxNode) -> Node:
        return n.ir(op)


for _op in ("Relu", "Sigmoid", "HardSwish"):
    _simple(_op)


@importer("LeakyRelu")
def leaky_relu(n: OnnxNode) -> Node:
    return n.ir("LeakyRelu", attrs={"alpha": float(n.attr("alpha", 0.01))})


@importer("HardSigmoid")
def hard_sigmoid(n: OnnxNode) -> Node:
    return n.ir("HardSigmoid", attrs={"alpha": float(n.attr("alpha", 0.2)), "beta": float(n.attr("beta", 0.5))})


@importer("Clip", const_inputs=(1, 2))
def clip(n: OnnxNode) -> Node:
    if n.opset < 11:
        low, high = n.attr("min"), n.attr("max")
    else:
        low, high = n.const(1), n.const(2)
    bounds = {"min": _scalar(n, low, "min"), "max": _scalar(n, high, "max")}
    return n.ir("Clip", inputs=n.inputs[:1], attrs=bounds)


def _scalar(n: OnnxNode, value: float | np.ndarray | None, what: str) -> float | None:
    if value is None:
        return None
    array = np.asarray(value)
    if array.size != 1:
        raise n.refuse(f"the {what} bound must be a scalar, got shape {array.shape}")
    return float(array.reshape(()))


def _check_legacy_broadcast(n: OnnxNode) -> None:
    """Before opset 7, ``broadcast=1, axis=k`` aligned the second operand at axis k: refuse it
    unless that is the numpy alignment (trailing axes)."""
    if n.opset >= 7 or not n.attr("broadcast", 0) or not n.has_attr("axis"):
        return
    rank_a, rank_b = len(n.shape(0)), len(n.shape(1))
    if n.attr("axis") % max(rank_a, 1) != rank_a - rank_b:
        raise n.refuse("legacy broadcasting along an axis (opset < 7 broadcast=1 with axis) is not supported")


def _add_sub(op: str) -> None:
    @importer(op)
    def _import(n: OnnxNode) -> Node:
        _check_legacy_broadcast(n)
        return n.ir(op)


for _op in ("Add", "Sub"):
    _add_sub(_op)


@importer("Mul", either_const=True)
def mul(n: OnnxNode) -> Node:
    _check_legacy_broadcast(n)
    if n.is_const(1):
        return n.ir("Mul")
    if n.is_const(0):
        return n.ir("Mul", inputs=[n.inputs[1], n.inputs[0]])
    hard_swish_input = _hard_swish_input(n)
    if hard_swish_input is not None:
        return n.ir("HardSwish", inputs=[hard_swish_input])
    raise n.refuse("Mul of two activations is not supported: a multiplier-free target multiplies only by constants")


def _hard_swish_input(n: OnnxNode) -> str | None:
    """``x`` when this Mul computes ``x * HardSigmoid(x)`` with alpha 1/6 and beta 1/2: HardSwish
    as torch exports it before opset 14 (the HardSigmoid node is pruned when nothing else reads it)."""
    for gate_position in (0, 1):
        gate, x = n.producer(gate_position), n.inputs[1 - gate_position]
        if (
            gate is not None and gate.op_type == "HardSigmoid" and gate.inputs[0] == x
            and math.isclose(gate.attr("alpha", 0.2), 1 / 6, rel_tol=1e-6)
            and math.isclose(gate.attr("beta", 0.5), 0.5, rel_tol=1e-6)
        ):
            return x
    return None


@importer("Div", const_inputs=(1,))
def div(n: OnnxNode) -> Node:
    _check_legacy_broadcast(n)
    return n.ir("Div")
