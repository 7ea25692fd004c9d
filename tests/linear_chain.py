"""Test helper: random chains of QConv layers (then optionally a QGemm) for the kernel tests,
described by hypothesis-drawn layer specs (`LAYER`), with every weight bit width 2..8."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder
from pqc.ir import Graph

#: one QConv: output channels per group, grouping, window, stride, dilation, pads, bits, clamp
LAYER = st.fixed_dictionaries({
    "cout_g": st.integers(1, 3), "groups": st.sampled_from(["one", "two", "depthwise"]),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "stride": st.sampled_from([1, 2]),
    "dilation": st.sampled_from([1, 1, 2]), "pads": st.tuples(*[st.integers(0, 2)] * 4),
    "bits": st.integers(2, 8), "relu": st.booleans(),
})


def bit_weights(rng: np.random.Generator, shape: tuple[int, ...], bits: int, extremes: bool = True) -> np.ndarray:
    """Random ``bits``-bit weights, a quarter of them zero (and, with ``extremes``, the first
    two the range's ends)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=shape)
    w[rng.random(shape) < 0.25] = 0
    if extremes:
        w.reshape(-1)[:2] = (lo, hi)[: w.size]
    return w.astype(np.int8)


def const_weights(b: IntGraphBuilder, w: np.ndarray, bits: int) -> str:
    """``w`` as a constant carrying its bit width, as lowering records it."""
    name = b.const("w", w)
    b.graph.values[name].meta["bits"] = bits
    return name


def sum_shift(k: int, bits: int) -> int:
    """A requantization shift that keeps outputs of a K-input sum mostly inside int8."""
    return max(0, bits + int(np.ceil(np.log2(k))) - 1)


def random_qconv(b: IntGraphBuilder, x: str, rng: np.random.Generator, spec: dict) -> str | None:
    """A random QConv of ``spec`` on ``x``; None when its window does not fit the padded input."""
    c, h, w = b.graph.values[x].shape[1:]
    group = {"one": 1, "two": 2 if c % 2 == 0 else 1, "depthwise": c}[spec["groups"]]
    cout = group * spec["cout_g"]
    kh, kw, d, s, bits = spec["kh"], spec["kw"], spec["dilation"], spec["stride"], spec["bits"]
    t, l, bo, r = spec["pads"]
    if h + t + bo < d * (kh - 1) + 1 or w + l + r < d * (kw - 1) + 1:
        return None
    wq = bit_weights(rng, (cout, c // group, kh, kw), bits)
    bias = b.const("b", rng.integers(-500, 500, cout).astype(np.int32))
    lo, hi, dtype = (0, 255, "uint8") if spec["relu"] else (-128, 127, "int8")
    return b.op("QConv", [x, const_weights(b, wq, bits), bias], dtype=dtype, kernel_shape=(kh, kw),
                strides=(s, s), pads=(t, l, bo, r), dilations=(d, d), group=group,
                shift=tuple(int(v) for v in sum_shift(wq[0].size, bits) + rng.integers(-1, 2, cout)), lo=lo, hi=hi)


def linear_chain(rng: np.random.Generator, cin: int, size: tuple[int, int], layers: list[dict],
                 gemm_bits: int | None = None, variant: str | None = None) -> Graph | None:
    """QConvs of ``layers`` on a ``1 x cin x size`` input, then (with ``gemm_bits``) a flatten and
    a 5-output QGemm; each QConv/QGemm on kernel ``<op>_<variant>`` when ``variant`` is given.
    None when a layer's window does not fit."""
    b = IntGraphBuilder(variant or "chain")
    x = b.input("x", (1, cin, *size))
    for spec in layers:
        x = random_qconv(b, x, rng, spec)
        if x is None:
            return None
    if gemm_bits is not None:
        k = int(np.prod(b.graph.values[x].shape[1:]))
        flat = b.op("QReshape", [x], dtype=b.graph.values[x].dtype, shape=(1, k), keep_batch=True)
        gw = const_weights(b, bit_weights(rng, (5, k), gemm_bits), gemm_bits)
        x = b.op("QGemm", [flat, gw, b.const("fb", rng.integers(-500, 500, 5).astype(np.int32))],
                 shift=(sum_shift(k, gemm_bits),) * 5, lo=-128, hi=127)
    graph = b.build(x)
    if variant is not None:
        for node in graph.nodes:
            if node.op in ("QConv", "QGemm"):
                node.meta["kernel"] = f"{node.op.lower()}_{variant}"
    return graph
