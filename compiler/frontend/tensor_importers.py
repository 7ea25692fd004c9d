"""Importers of layout and plumbing ops: Reshape family, Transpose, Concat, Pad, reductions,
Softmax, Identity and Dropout.

Operands that ONNX passes as tensors (shapes, axes, pads) become attributes. Which opset passes
them as attributes and which as inputs is decided here, so the IR has one form.
"""
from __future__ import annotations

import numpy as np

from ..ir import Node
from .axes import check_not_batch_axis, normalize_axes, normalize_axis
from .registry import OnnxNode, importer


def _axes(n: OnnxNode, first_opset_with_input: int) -> tuple[int, ...] | None:
    """The ``axes`` operand: an attribute before ``first_opset_with_input``, else constant input 1."""
    if n.opset < first_opset_with_input:
        axes = n.attr("axes")
    else:
        axes = n.const(1)
    return None if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))


@importer("Flatten")
def flatten(n: OnnxNode) -> Node:
    rank = len(n.shape(0))
    axis = int(n.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise n.refuse(f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    check_not_batch_axis(n, [axis], "Flatten at axis 0")
    return n.ir("Flatten", attrs={"axis": axis})


@importer("Reshape", const_inputs=(1,))
def reshape(n: OnnxNode) -> Node:
    """The target shape is taken from shape inference, which already resolved -1 and 0."""
    in_shape, out_shape = n.shape(0), n.out_shape()
    keep_batch = bool(in_shape) and bool(out_shape) and in_shape[0] == out_shape[0]
    if n.dynamic_batch and not keep_batch:
        raise n.refuse(
            f"reshape from {in_shape} to {out_shape} does not keep the batch dimension, "
            "so it would fix the batch size of a dynamic-batch model to 1"
        )
    return n.ir("Reshape", inputs=n.inputs[:1], attrs={"shape": out_shape, "keep_batch": keep_batch})


@importer("Squeeze", const_inputs=(1,))
def squeeze(n: OnnxNode) -> Node:
    in_shape = n.shape(0)
    axes = _axes(n, 13)
    if axes is None:
        axes = tuple(i for i, d in enumerate(in_shape) if d == 1)
    axes = normalize_axes(n, axes, len(in_shape))
    if any(in_shape[a] != 1 for a in axes):
        raise n.refuse(f"cannot squeeze axes {axes} of shape {in_shape}: not all have size 1")
    check_not_batch_axis(n, axes, "Squeeze of axis 0")
    return n.ir("Squeeze", inputs=n.inputs[:1], attrs={"axes": axes})


@importer("Unsqueeze", const_inputs=(1,))
def unsqueeze(n: OnnxNode) -> Node:
    axes = _axes(n, 13)
    if axes is None:
        raise n.refuse("Unsqueeze needs axes")
    axes = normalize_axes(n, axes, len(n.shape(0)) + len(axes))
    check_not_batch_axis(n, axes, "Unsqueeze at axis 0")
    return n.ir("Unsqueeze", inputs=n.inputs[:1], attrs={"axes": axes})


def _reduce(op: str, first_opset_with_axes_input: int, empty_ok: bool) -> None:
    """Register a reduction; ``empty_ok``: reducing an empty axis has a value (0 for a sum)."""

    @importer(op, const_inputs=(1,))
    def _import(n: OnnxNode) -> Node:
        rank = len(n.shape(0))
        axes = _axes(n, first_opset_with_axes_input)
        if not axes:
            if n.attr("noop_with_empty_axes", 0):
                return n.ir("Identity", inputs=n.inputs[:1])
            axes = tuple(range(rank))
        attrs = {"axes": normalize_axes(n, axes, rank), "keepdims": int(n.attr("keepdims", 1))}
        check_not_batch_axis(n, attrs["axes"], f"{op} over axis 0")
        if not empty_ok and any(n.shape(0)[a] == 0 for a in attrs["axes"]):
            raise n.refuse(f"{op} over an empty axis has no value")
        return n.ir(op, inputs=n.inputs[:1], attrs=attrs)


for _op, _opset, _empty_ok in (("ReduceMean", 18, False), ("ReduceSum", 13, True), ("ReduceMax", 18, False)):
    _reduce(_op, _opset, _empty_ok)


@importer("Transpose")
def transpose(n: OnnxNode) -> Node:
    rank = len(n.shape(0))
    given = n.attr("perm", tuple(reversed(range(rank))))
    perm = tuple(normalize_axis(n, int(a), rank) for a in given)
    if sorted(perm) != list(range(rank)):
        raise n.refuse(f"perm {given} is not a permutation of the {rank} axes")
    check_not_batch_axis(n, [0] if perm[0] != 0 else [], "Transpose moving axis 0")
    return n.ir("Transpose", attrs={"perm": perm})


@importer("Concat")
def concat(n: OnnxNode) -> Node:
    axis = normalize_axis(n, int(n.attr("axis", 1)), len(n.shape(0)))
    check_not_batch_axis(n, [axis], "Concat along axis 0")
    return n.ir("Concat", attrs={"axis": axis})


@importer("Pad", const_inputs=(1, 2, 3))
def pad(n: OnnxNode) -> Node:
    mode = n.attr("mode", "constant")
    if mode != "constant":
        raise n.refuse(f"Pad mode {mode} is not supported; only constant padding is")
    rank = len(n.shape(0))
    if n.opset < 11:
        pads = tuple(int(p) for p in n.attr("pads", n.attr("paddings", ())))
        value = float(n.attr("value", 0.0))
    else:
        pads = tuple(int(p) for p in n.const(1).reshape(-1))
        fill = n.const(2)
        value = 0.0 if fill is None or fill.size == 0 else float(fill.reshape(-1)[0])
        axes = n.const(3)
        if axes is not None:
            pads = _pads_for_all_axes(n, pads, normalize_axes(n, axes.reshape(-1), rank), rank)
    if len(pads) != 2 * rank:
        raise n.refuse(f"pads {pads} must have 2 x rank = {2 * rank} entries")
    check_not_batch_axis(n, [0] if pads[0] or pads[rank] else [], "padding axis 0")
    return n.ir("Pad", inputs=n.inputs[:1], attrs={"pads": pads, "value": value})


def _pads_for_all_axes(n: OnnxNode, pads: tuple[int, ...], axes: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """Expand pads given for ``axes`` only (opset 18) to ONNX order over all axes."""
    if len(pads) != 2 * len(axes):
        raise n.refuse(f"pads {pads} must have 2 x {len(axes)} entries for axes {axes}")
    full = [0] * (2 * rank)
    for k, axis in enumerate(axes):
        full[axis], full[axis + rank] = pads[k], pads[k + len(axes)]
    return tuple(full)


@importer("Softmax")
def softmax(n: OnnxNode) -> Node:
    coerce_2d = n.opset < 13
    axis = normalize_axis(n, int(n.attr("axis", 1 if coerce_2d else -1)), len(n.shape(0)))
    check_not_batch_axis(n, [axis], "Softmax over axis 0")
    return n.ir("Softmax", attrs={"axis": axis, "coerce_2d": coerce_2d})


@importer("Identity")
def identity(n: OnnxNode) -> Node:
    return n.ir("Identity")


@importer("Dropout", const_inputs=(1, 2))
def dropout(n: OnnxNode) -> Node:
    """Inference identity. Before opset 12 only attributes (ratio, is_test) describe it, and
    runtimes treat it as identity at inference whatever they say; so does pqc."""
    training = n.const(2) if n.opset >= 12 else None
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        raise n.refuse("Dropout in training mode (training_mode=True) is not supported")
    if n.output_used(1):
        raise n.refuse("the mask output of Dropout is not supported")
    return n.ir("Dropout", inputs=n.inputs[:1])
