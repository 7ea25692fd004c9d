"""Importers of the layers with weights or windows: Conv, BatchNormalization, pooling, Gemm, MatMul.

Windowed ops are 2-D only (NCHW input); ``auto_pad`` is resolved to explicit
(top, left, bottom, right) pads here, so the IR never sees it.
"""
from __future__ import annotations

import math

from ...ir import Node
from ..registry import OnnxNode, importer


def _require_2d(n: OnnxNode) -> tuple[int, int]:
    """The input's (H, W); refuse any rank other than 4 (N, C, H, W)."""
    shape = n.shape(0)
    if len(shape) != 4:
        raise n.refuse(f"only 2-D {n.op_type} on 4-D (N, C, H, W) input is supported; the input has rank {len(shape)}")
    return shape[2], shape[3]


def _pair(n: OnnxNode, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = tuple(int(v) for v in n.attr(key, default))
    if len(value) != len(default):
        raise n.refuse(f"attribute {key}={value} must have {len(default)} entries for a 2-D op")
    return value


def _window_attrs(n: OnnxNode, kernel: tuple[int, int]) -> dict:
    """strides, dilations and explicit pads (t, l, b, r), with auto_pad resolved."""
    in_hw = _require_2d(n)
    strides = _pair(n, "strides", (1, 1))
    dilations = _pair(n, "dilations", (1, 1))
    auto_pad = n.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = _pair(n, "pads", (0, 0, 0, 0))
    elif auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        pads = (begins[0], begins[1], ends[0], ends[1])
    else:
        raise n.refuse(f"unknown auto_pad {auto_pad!r}; supported: NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    return {"strides": strides, "dilations": dilations, "pads": pads}


@importer("Conv", const_inputs=(1, 2))
def conv(n: OnnxNode) -> Node:
    _require_2d(n)
    weight = n.const(1)
    kernel = _pair(n, "kernel_shape", tuple(int(d) for d in weight.shape[2:]))
    attrs = {"kernel_shape": kernel, **_window_attrs(n, kernel), "group": int(n.attr("group", 1))}
    return n.ir("Conv", attrs=attrs)


@importer("BatchNormalization", const_inputs=(1, 2, 3, 4))
def batch_normalization(n: OnnxNode) -> Node:
    if n.attr("training_mode", 0) or any(n.output_used(j) for j in range(1, len(n.outputs))):
        raise n.refuse("training-mode BatchNormalization (training_mode=1 or running statistics outputs) is not supported")
    if n.attr("spatial", 1) != 1:
        raise n.refuse("BatchNormalization with spatial=0 (per-element statistics) is not supported")
    return n.ir("BatchNormalization", attrs={"epsilon": float(n.attr("epsilon", 1e-5)), "momentum": float(n.attr("momentum", 0.9))})


@importer("MaxPool")
def max_pool(n: OnnxNode) -> Node:
    if n.output_used(1):
        raise n.refuse("the Indices output of MaxPool is not supported")
    _require_2d(n)
    kernel = _pair(n, "kernel_shape", (0, 0))
    attrs = {"kernel_shape": kernel, **_window_attrs(n, kernel), "ceil_mode": int(n.attr("ceil_mode", 0))}
    return n.ir("MaxPool", attrs=attrs)


@importer("AveragePool")
def average_pool(n: OnnxNode) -> Node:
    _require_2d(n)
    kernel = _pair(n, "kernel_shape", (0, 0))
    attrs = _window_attrs(n, kernel)
    if attrs.pop("dilations") != (1, 1):
        raise n.refuse("AveragePool with dilations other than 1 is not supported")
    attrs.update(kernel_shape=kernel, ceil_mode=int(n.attr("ceil_mode", 0)),
                 count_include_pad=int(n.attr("count_include_pad", 0)))
    return n.ir("AveragePool", attrs=attrs)


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
    return n.ir("Gemm", attrs=attrs)


@importer("MatMul", either_const=True)
def matmul(n: OnnxNode) -> Node:
    if not (n.is_const(0) or n.is_const(1)):
        raise n.refuse("MatMul of two activations is not supported: a multiplier-free target multiplies only by constants")
    return n.ir("MatMul")
