"""Importers of the layers with weights or windows: Conv, BatchNormalization, LRN, pooling, Gemm,
MatMul.

The IR's windowed ops are 2-D (N, C, H, W). A 1-D op (N, C, L) is imported as the same op on a
unit-height view: Unsqueeze to (N, C, 1, L), the 2-D op with a 1-wide window along H, Squeeze
back. ``auto_pad`` is resolved to explicit (top, left, bottom, right) pads here, so the IR never
sees it.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Node
from .axes import check_not_batch_axis
from .registry import OnnxNode, importer


def _spatial_dims(n: OnnxNode) -> tuple[int, ...]:
    """The input's spatial sizes, (L,) or (H, W); refuse other ranks."""
    shape = n.shape(0)
    if len(shape) not in (3, 4):
        raise n.refuse(
            f"only 1-D and 2-D {n.op_type} (input rank 3 or 4) are supported; the input has rank {len(shape)}"
        )
    return shape[2:]


def _ints(n: OnnxNode, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = tuple(int(v) for v in n.attr(key, default))
    if len(value) != len(default):
        raise n.refuse(f"attribute {key}={value} must have {len(default)} entries")
    return value


def _window_attrs(n: OnnxNode, kernel: tuple[int, ...]) -> dict:
    """2-D kernel_shape, strides, dilations and explicit pads (t, l, b, r), auto_pad resolved.

    ``kernel`` is the default kernel shape (a Conv's weight shape; empty for pools, which must
    say it)."""
    sizes = _spatial_dims(n)
    ones = (1,) * len(sizes)
    kernel = _ints(n, "kernel_shape", kernel or ones)
    strides, dilations = _ints(n, "strides", ones), _ints(n, "dilations", ones)
    auto_pad = n.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = _ints(n, "pads", (0,) * 2 * len(sizes))
    elif auto_pad == "VALID":
        pads = (0,) * 2 * len(sizes)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(sizes, kernel, strides, dilations):
            total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        pads = tuple(begins + ends)
    else:
        raise n.refuse(f"unknown auto_pad {auto_pad!r}; supported: NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    if len(sizes) == 1:  # a unit-height window over the (N, C, 1, L) view
        return {"kernel_shape": (1,) + kernel, "strides": (1,) + strides, "dilations": (1,) + dilations,
                "pads": (0, pads[0], 0, pads[1])}
    return {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "pads": pads}


def _windowed(n: OnnxNode, op: str, attrs: dict, operands: list[str]) -> list[Node]:
    """The IR node of a windowed op; for 1-D input, wrapped in Unsqueeze/Squeeze of axis 2."""
    if len(n.shape(0)) == 4:
        return [n.ir(op, inputs=[n.inputs[0], *operands], attrs=attrs)]
    x_2d, y_2d = n.fresh_value(f"{n.inputs[0]}_2d"), n.fresh_value(f"{n.outputs[0]}_2d")
    return [
        Node("Unsqueeze", [n.inputs[0]], [x_2d], {"axes": (2,)}, name=f"{n.name}_to_2d"),
        Node(op, [x_2d, *operands], [y_2d], attrs, name=n.name),
        Node("Squeeze", [y_2d], [n.outputs[0]], {"axes": (2,)}, name=f"{n.name}_to_1d"),
    ]


@importer("Conv", const_inputs=(1, 2))
def conv(n: OnnxNode) -> list[Node]:
    weight = n.const(1)
    attrs = {**_window_attrs(n, tuple(int(d) for d in weight.shape[2:])), "group": int(n.attr("group", 1))}
    channels, group = n.shape(0)[1], attrs["group"]
    if group < 1 or channels % group or weight.shape[0] % group or weight.shape[1] * group != channels:
        raise n.refuse(f"group={group} does not fit its {channels} input channels and weight of shape "
                       f"{tuple(weight.shape)} (both channel counts must be multiples of group, and the "
                       "weight's axis 1 must be input channels / group)")
    operands = [name for name in n.inputs[1:3] if name]
    if weight.ndim == 3:
        operands[0] = n.new_const(f"{n.inputs[1]}_2d", weight[:, :, np.newaxis, :])
    return _windowed(n, "Conv", attrs, operands)


@importer("BatchNormalization", const_inputs=(1, 2, 3, 4))
def batch_normalization(n: OnnxNode) -> Node:
    if n.attr("training_mode", 0) or any(n.output_used(j) for j in range(1, len(n.outputs))):
        raise n.refuse("training-mode BatchNormalization (training_mode=1 or running statistics outputs) is not supported")
    if n.attr("spatial", 1) != 1:
        raise n.refuse("BatchNormalization with spatial=0 (per-element statistics) is not supported")
    return n.ir("BatchNormalization", attrs={"epsilon": float(n.attr("epsilon", 1e-5)), "momentum": float(n.attr("momentum", 0.9))})


@importer("LRN")
def lrn(n: OnnxNode) -> Node:
    if len(n.shape(0)) < 3:
        raise n.refuse(f"LRN needs an (N, C, ...) input of rank 3 or more, got rank {len(n.shape(0))}")
    size = int(n.attr("size"))
    if size < 1:
        raise n.refuse(f"size {size} must be positive")
    attrs = {"size": size, "alpha": float(n.attr("alpha", 1e-4)), "beta": float(n.attr("beta", 0.75)),
             "bias": float(n.attr("bias", 1.0))}
    return n.ir("LRN", attrs=attrs)


@importer("MaxPool")
def max_pool(n: OnnxNode) -> list[Node]:
    if n.output_used(1):
        raise n.refuse("the Indices output of MaxPool is not supported")
    attrs = {**_window_attrs(n, ()), "ceil_mode": int(n.attr("ceil_mode", 0))}
    return _windowed(n, "MaxPool", attrs, [])


@importer("AveragePool")
def average_pool(n: OnnxNode) -> list[Node]:
    attrs = _window_attrs(n, ())
    if any(d != 1 for d in attrs.pop("dilations")):
        raise n.refuse("AveragePool with dilations other than 1 is not supported")
    attrs.update(ceil_mode=int(n.attr("ceil_mode", 0)), count_include_pad=int(n.attr("count_include_pad", 0)))
    return _windowed(n, "AveragePool", attrs, [])



@importer("GlobalAveragePool")
def global_average_pool(n: OnnxNode) -> Node:
    return n.ir("GlobalAveragePool")


@importer("Gemm", const_inputs=(1, 2))
def gemm(n: OnnxNode) -> Node:
    attrs = {
        "alpha": float(n.attr("alpha", 1.0)),
        "beta": float(n.attr("beta", 1.0)),
        "transA": int(n.attr("transA", 0)),
        "transB": int(n.attr("transB", 0)),
    }
    check_not_batch_axis(n, [0] if attrs["transA"] else [], "Gemm with transA=1 (contracting axis 0)")
    return n.ir("Gemm", attrs=attrs)


@importer("MatMul", either_const=True)
def matmul(n: OnnxNode) -> Node:
    if not (n.is_const(0) or n.is_const(1)):
        raise n.refuse("MatMul of two activations is not supported: a multiplier-free target multiplies only by constants")
    x_position = 1 if n.is_const(0) else 0
    contracts_batch = len(n.shape(x_position)) <= (2 if x_position == 1 else 1)
    check_not_batch_axis(n, [0] if contracts_batch else [], "MatMul contracting axis 0")
    return n.ir("MatMul")
