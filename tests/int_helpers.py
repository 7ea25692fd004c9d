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


def resnet_like(rng: np.random.Generator, in_shape: tuple[int, int, int] = (1, 12, 12), widths: tuple[int, ...] = (4, 8),
                classes: int = 5, wbits: int = 5) -> Graph:
    """An annotated ResNet-style float graph: stem conv, per width a strided conv and a residual
    block (conv-relu-conv, add, relu), max pool after the stem, global average pool, Gemm, with
    int32 logits. Exponents are fixed and reasonable; weights are exact integers times 2^-7."""
    from ir_builder import GraphBuilder, conv_attrs

    gb = GraphBuilder("resnet_like", dynamic_batch=True)
    acts: dict[str, tuple[int, bool, int]] = {}
    weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    x = gb.input("x", (1,) + tuple(in_shape))
    acts[x] = (8, True, -5)

    def conv(inp: str, cin: int, cout: int, stride: int = 1, act="relu") -> str:
        exps = np.full(cout, -7)
        q, wf = int_weight(rng, (cout, cin, 3, 3), exps, wbits)
        w = gb.const("w", wf)
        b = gb.const("b", rng.normal(scale=0.2, size=cout).astype(np.float32))
        out = gb.op("Conv", [inp, w, b], act=act, **conv_attrs(3, stride))
        weights[w] = (q, exps)
        acts[out] = (8, act is None, -4 if act is None else -3)
        return out

    y = conv(x, in_shape[0], widths[0])
    y = gb.op("MaxPool", [y], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    acts[y] = (8, False, -3)
    cin = widths[0]
    for i, width in enumerate(widths):
        if i:
            y = conv(y, cin, width, stride=2)
        h = conv(conv(y, width, width), width, width, act=None)
        y = gb.op("Add", [y, h], act="relu")
        acts[y] = (8, False, -3)
        cin = width
    y = gb.op("GlobalAveragePool", [y])
    acts[y] = (8, False, -4)
    y = gb.op("Flatten", [y], axis=1)
    acts[y] = (8, False, -4)
    exps = np.full(classes, -7)
    q, wf = int_weight(rng, (classes, cin), exps, wbits)
    w = gb.const("w", wf)
    weights[w] = (q, exps)
    logits = gb.op("Gemm", [y, w, gb.const("b", rng.normal(size=classes).astype(np.float32))],
                   alpha=1.0, beta=1.0, transA=0, transB=1)
    acts[logits] = (32, True, -11)
    return annotate(gb.build(logits), acts, weights)
