"""Importers of elementwise ops: activations and broadcasting arithmetic.

Mul takes any two operands (a feature map times a squeeze-excite gate is a product of two
activations: whether a target can compute it is lowering's business); a constant operand is
normalized to the second position. Div divides by a constant only. Sum is a chain of Adds.

Hard-swish arrives in many exported forms; each becomes the HardSwish op (see `_hard_swish_input`).
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


@importer("Sum")
def sum_(n: OnnxNode) -> list[Node]:
    """n-ary Sum (ResNet-50 of the ONNX zoo adds residuals with it) as a left-to-right Add chain."""
    operands = [name for name in n.inputs if name]
    if len(operands) == 1:
        return [n.ir("Identity", inputs=operands)]
    nodes, acc = [], operands[0]
    for k, operand in enumerate(operands[1:], start=1):
        last = k == len(operands) - 1
        out = n.outputs[0] if last else n.fresh_value(f"{n.outputs[0]}_partial{k}")
        nodes.append(Node("Add", [acc, operand], [out], {}, name=n.name if last else f"{n.name}_add{k}"))
        acc = out
    return nodes


@importer("Mul", either_const=True)
def mul(n: OnnxNode) -> Node:
    _check_legacy_broadcast(n)
    hard_swish_input = _hard_swish_input(n)
    if hard_swish_input is not None:
        return n.ir("HardSwish", inputs=[hard_swish_input])
    if n.is_const(0) and not n.is_const(1):
        return n.ir("Mul", inputs=[n.inputs[1], n.inputs[0]])
    return n.ir("Mul")


@importer("Div", const_inputs=(1,))
def div(n: OnnxNode) -> Node:
    _check_legacy_broadcast(n)
    hard_swish_input = _hard_swish_input(n)
    if hard_swish_input is not None:
        return n.ir("HardSwish", inputs=[hard_swish_input])
    return n.ir("Div")


# ----------------------------------------------------------------- hard-swish, as exported
# hswish(x) = x * gate(x), gate(x) = relu6(x + 3) / 6. Exporters write the gate as
# HardSigmoid(x; 1/6, 1/2), Clip(x + 3, 0, 6) / 6 or Clip(x + 3, 0, 6) * (1/6), and the whole
# as x * gate(x) or (x * Clip(x + 3, 0, 6)) / 6 (or * 1/6). The node that completes the pattern
# imports as HardSwish(x); the nodes it consumed are pruned when nothing else reads them.

def _hard_swish_input(n: OnnxNode) -> str | None:
    """``x`` when this Mul or Div computes hswish(x) in one of the exported forms, else None."""
    if n.op_type == "Mul":
        for gate in (0, 1):
            x = n.inputs[1 - gate]
            if _gate_input(n.producer(gate)) == x:
                return x
    scaled = _scaled_operand(n, 1 / 6)
    product = None if scaled is None else n.producer(scaled)
    if product is not None and product.op_type == "Mul":
        for relu6 in (0, 1):
            x = product.inputs[1 - relu6]
            if _relu6_of_x_plus_3(product.producer(relu6)) == x:
                return x
    return None


def _gate_input(v: OnnxNode | None) -> str | None:
    """``x`` when ``v`` computes relu6(x + 3) / 6."""
    if v is None:
        return None
    if v.op_type == "HardSigmoid":
        if _close(v.attr("alpha", 0.2), 1 / 6) and _close(v.attr("beta", 0.5), 0.5):
            return v.inputs[0]
        return None
    scaled = _scaled_operand(v, 1 / 6)
    return None if scaled is None else _relu6_of_x_plus_3(v.producer(scaled))


def _relu6_of_x_plus_3(v: OnnxNode | None) -> str | None:
    """``x`` when ``v`` is Clip(x + 3, 0, 6)."""
    if v is None or v.op_type != "Clip":
        return None
    low, high = (v.attr("min"), v.attr("max")) if v.opset < 11 else (_maybe_const(v, 1), _maybe_const(v, 2))
    if low is None or high is None or not (_close(low, 0.0) and _close(high, 6.0)):
        return None
    plus = v.producer(0)
    if plus is None or plus.op_type != "Add":
        return None
    for three in (0, 1):
        if _close(_maybe_const(plus, three), 3.0):
            return plus.inputs[1 - three]
    return None


def _scaled_operand(v: OnnxNode, factor: float) -> int | None:
    """The operand position ``v`` multiplies by the scalar ``factor`` (as Mul by it or Div by
    its inverse), else None."""
    if v.op_type == "Div":
        return 0 if _close(_maybe_const(v, 1), 1 / factor) else None
    if v.op_type == "Mul":
        for c in (0, 1):
            if _close(_maybe_const(v, c), factor):
                return 1 - c
    return None


def _maybe_const(v: OnnxNode, i: int) -> np.ndarray | None:
    return v.const(i) if v.is_const(i) else None


def _close(value: float | np.ndarray | None, target: float) -> bool:
    """Whether ``value`` is one number (of any shape with one element) close to ``target``."""
    if value is None:
        return False
    array = np.asarray(value)
    return array.size == 1 and math.isclose(float(array.reshape(())), target, rel_tol=1e-5, abs_tol=1e-7)
