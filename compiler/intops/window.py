"""Pooling-window geometry shared by QMaxPool and QAvgPool (and their C templates).

The rules are ONNX's (as onnxruntime implements them, and as the float ops in `pqc.ops.pool`):
along one axis of ``size`` elements, with ``span = dilation * (kernel - 1) + 1``, the output
length is ``floor`` (``ceil`` in ceil mode) of ``(size + pad_begin + pad_end - span) / stride + 1``;
in ceil mode a last window that would start inside the end padding is dropped, and a last
window that runs past the end padding is clipped (it sees nothing there and counts nothing).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ops.pool import axis_windows  # the one definition of the ONNX window rule


def torch_pads(in_hw: tuple[int, int], attrs: dict[str, Any]) -> tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom) that make an unpadded pool give the output."""
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
    dh, dw = attrs.get("dilations", (1, 1))
    t, l, b, r = attrs["pads"]
    _, extra_h = axis_windows(in_hw[0], kh, sh, dh, t, b, attrs.get("ceil_mode", 0))
    _, extra_w = axis_windows(in_hw[1], kw, sw, dw, l, r, attrs.get("ceil_mode", 0))
    return l, r + extra_w, t, b + extra_h


def output_hw(in_hw: tuple[int, int], attrs: dict[str, Any]) -> tuple[int, int]:
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
    dh, dw = attrs.get("dilations", (1, 1))
    t, l, b, r = attrs["pads"]
    ceil = attrs.get("ceil_mode", 0)
    return axis_windows(in_hw[0], kh, sh, dh, t, b, ceil)[0], axis_windows(in_hw[1], kw, sw, dw, l, r, ceil)[0]


def _axis_counts(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, ceil_mode: int,
                 include_pad: bool) -> np.ndarray:
    out, _ = axis_windows(size, kernel, stride, 1, pad_begin, pad_end, ceil_mode)
    start = np.arange(out) * stride - pad_begin
    stop = start + kernel
    if include_pad:
        return np.minimum(stop, size + pad_end) - start
    return np.minimum(stop, size) - np.maximum(start, 0)


def avg_divisors(in_hw: tuple[int, int], attrs: dict[str, Any]) -> np.ndarray:
    """``[Ho, Wo]`` int64: the divisor of each average-pool output position.

    ``count_include_pad`` 0: the input elements in the window; 1: also the explicit padding,
    never the part of a ceil-mode window beyond it.
    """
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
    t, l, b, r = attrs["pads"]
    ceil, inc = attrs.get("ceil_mode", 0), bool(attrs.get("count_include_pad", 0))
    rows = _axis_counts(in_hw[0], kh, sh, t, b, ceil, inc)
    cols = _axis_counts(in_hw[1], kw, sw, l, r, ceil, inc)
    return np.outer(rows, cols).astype(np.int64)
