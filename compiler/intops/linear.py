"""What QConv and QGemm share: a weighted sum plus bias, then one requantization per channel.

``acc[c] = b[c] + sum x * w[c]`` (exact, int32 by range analysis), then
``y = clamp(rshift_round(acc, shift[c]), lo, hi)``. The weights are multiplied as shift-adds
of their NAF digits (DESIGN.md "Multiplier-free weights"), so range analysis also bounds the
partial sums of any ordering of those shift-adds (intermediate ``shift_add``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..intmath import naf, naf_magnitude, requantize
from . import Bounds, Interval, IntOpDef, abs_max, make_cost, output_elements, requant_bounds

if TYPE_CHECKING:  # pragma: no cover
    from ..ir import Graph, Node, Value


def exact_dtype(x: np.ndarray, w: np.ndarray) -> torch.dtype:
    """The cheapest torch float dtype in which ``sum x * w`` is exact in any summation order.

    float32 holds every integer below 2^24 exactly; when ``max|x| * max_c sum|w[c]|`` stays below
    that, every product and partial sum is such an integer, so float32 is exact in any order
    (given IEEE float32 arithmetic, checked here, and no Winograd convolutions: callers turn
    NNPACK off) and several times faster. Otherwise float64, exact below 2^53, which
    int32-bounded sums always are.
    """
    x_abs = max(-int(x.min()), int(x.max())) if x.size else 0  # not np.abs: it wraps int8 -128
    w_abs = int(np.abs(w.astype(np.int64)).reshape(w.shape[0], -1).sum(axis=1).max(initial=0))
    return torch.float32 if x_abs * w_abs < (1 << 24) and _ieee_float32() else torch.float64


def _ieee_float32() -> bool:
    """Whether torch computes float32 matmuls and convolutions in full IEEE precision (not
    TF32/bf16), as it does unless a user lowers the precision globally."""
    conv = getattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision", "none")
    return torch.get_float32_matmul_precision() == "highest" and conv in ("none", "ieee")


class LinearOpDef(IntOpDef):
    """Base of ops whose output channel ``c`` is ``b[c] + <x window, w[c]>`` requantized."""

    #: whether some inputs the sum reads are padding zeros (so 0 joins the input interval)
    pads_with_zero = False

    def accumulate(self, node: "Node", x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``sum x * w`` per output element, exact, as int64 (no bias); see `exact_dtype`."""
        raise NotImplementedError

    def positions(self, node: "Node", graph: "Graph") -> int:
        """Output positions per channel of one sample (each costs the channel's digits in adds)."""
        raise NotImplementedError

    def simulate(self, node, inputs):
        x, w, b = inputs
        acc = self.accumulate(node, x, w)
        acc += b.astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
        return [requantize(acc, node.attrs["shift"], node.attrs["lo"], node.attrs["hi"])]

    def bounds(self, node, graph, in_ranges):
        x_lo, x_hi = in_ranges[0]
        if self.pads_with_zero and any(node.attrs.get("pads", ())):
            x_lo, x_hi = min(x_lo, 0), max(x_hi, 0)
        w = graph.values[node.inputs[1]].data.astype(np.int64)
        w = w.reshape(w.shape[0], -1)
        b = graph.values[node.inputs[2]].data.astype(np.int64)
        pos = np.where(w > 0, w, 0).sum(axis=1)
        neg = np.where(w < 0, w, 0).sum(axis=1)
        mag = naf_magnitude(w).sum(axis=1)
        x_abs = abs_max((x_lo, x_hi))
        accs: list[Interval] = []
        partial = 0
        for c in range(w.shape[0]):
            p, n, bc = int(pos[c]), int(neg[c]), int(b[c])
            accs.append((bc + p * x_lo + n * x_hi, bc + p * x_hi + n * x_lo))
            partial = max(partial, abs(bc) + int(mag[c]) * x_abs)
        out, inter = requant_bounds(accs, node.attrs["shift"], node.attrs["lo"], node.attrs["hi"])
        acc_all = (min(a[0] for a in accs), max(a[1] for a in accs))
        return Bounds([out], {"acc": acc_all, "shift_add": (-partial, partial), **inter})

    def cost(self, node, graph):
        """adds: one per nonzero NAF digit per output position, plus the bias add and (when the
        channel's shift is positive) the rounding add per output element; shifts: one per
        nonzero digit position k > 0 used by a channel per output position (the partial sums are
        shifted once per digit position), plus the requantizing shift; dense_weight_bytes: the
        weights packed at their bit width and int32 biases; ideal_adds: the digits times the
        output positions."""
        w = graph.values[node.inputs[1]].data
        b = graph.values[node.inputs[2]].data
        d = naf(w.reshape(w.shape[0], -1))  # [Cout, K, width]
        digits = np.count_nonzero(d, axis=(1, 2))
        used = np.any(d != 0, axis=1)  # [Cout, width]
        used[:, 0] = False
        positions = self.positions(node, graph)
        shift = np.broadcast_to(np.asarray(node.attrs["shift"]), (w.shape[0],))
        adds = positions * int(digits.sum() + w.shape[0] + np.count_nonzero(shift > 0))
        shifts = positions * int(used.sum() + np.count_nonzero(shift != 0))
        dense = -(-w.size * weight_bits(graph.values[node.inputs[1]]) // 8) + 4 * b.size
        return make_cost(adds, shifts, dense, digits.sum(), positions * int(digits.sum()))


def weight_bits(w: "Value") -> int:
    """The bit width a weight constant is stored at: ``meta["bits"]`` as `lower` records it, else
    (a hand-built program) the narrowest signed width that holds its values."""
    if "bits" in w.meta:
        return int(w.meta["bits"])
    return signed_width(w.data)


def signed_width(data: np.ndarray) -> int:
    """The narrowest two's complement width (at least 2 bits) that holds every value of ``data``
    (a ``pot`` weight's ``bits`` count exponent codes, not this width)."""
    data = np.asarray(data, dtype=np.int64)
    lo, hi = int(data.min(initial=0)), int(data.max(initial=0))
    return max(2, hi.bit_length() + 1, (-lo - 1).bit_length() + 1)


def per_channel_elements(node: "Node", graph: "Graph") -> int:
    """Output elements of one sample divided by the channel count (axis 1)."""
    shape = graph.values[node.outputs[0]].shape
    return output_elements(node, graph) // max(int(shape[1]), 1)

