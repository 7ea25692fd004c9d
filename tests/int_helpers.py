"""Test helpers for the integer path: hand-annotated float graphs and independent references.

Weights are drawn as integers first and the float graph holds exactly ``q * 2^e``, so the float
model and the integer program describe the same numbers and references can be exact.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from pqc.ir import Graph
from pqc.quant import ActQuant, WeightQuant, set_quant


def int_weight(rng: np.random.Generator, shape: tuple[int, ...], exps: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Random integer weights (output channel on axis 0) and the float weights they represent."""
    hi = (1 << (bits - 1)) - 1
    q = rng.integers(-hi, hi + 1, size=shape).astype(np.int8)
    scale = np.exp2(np.asarray(exps, dtype=np.float64)).reshape((-1,) + (1,) * (len(shape) - 1))
    return q, (q * scale).astype(np.float32)


def annotate(graph: Graph, acts: dict[str, tuple[int, bool, int]], weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}) -> Graph:
    """Attach ``ActQuant(bits, signed, exp)`` to activations and ``WeightQuant`` (q, exps) to weights."""
    for name, (bits, signed, exp) in acts.items():
        set_quant(graph, name, ActQuant(bits, signed, exp))
    for name, (q, exps) in weights.items():
        set_quant(graph, name, WeightQuant(8, "int", np.asarray(exps, dtype=np.int64), q))
    return graph


def rhu(x: Fraction) -> int:
    """Round half up, exactly."""
    return math.floor(x + Fraction(1, 2))


def rha(x: Fraction) -> int:
    """Round half away from zero, exactly."""
    return int(math.copysign(math.floor(abs(x) + Fraction(1, 2)), x))


def fmt_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def conv_int(x: np.ndarray, w: np.ndarray, pads, strides, dilations, group: int) -> np.ndarray:
    """Integer conv2d by explicit kernel-offset loops in int64 (independent of torch)."""
    t, l, b, r = pads
    x = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (t, b), (l, r)))
    n, cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = strides, dilations
    ho = (h - (dh * (kh - 1) + 1)) // sh + 1
    wo = (wd - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((n, cout, ho, wo), dtype=np.int64)
    per_group = cout // group
    for co in range(cout):
        g = co // per_group
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    patch = x[:, g * cg + ci, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                    out[:, co] += patch * int(w[co, ci, i, j])
    return out


def pool_windows(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, out: int, dilation: int = 1):
    """Per output index: (input indices inside the input, count including explicit padding)."""
    res = []
    for o in range(out):
        idx = [o * stride - pad_begin + a * dilation for a in range(kernel)]
        res.append(([i for i in idx if 0 <= i < size], sum(1 for i in idx if -pad_begin <= i < size + pad_end)))
    return res
