"""Test helper: hand-built integer IR graphs (what `pqc.passes.lower` produces), op by op.

`IntGraphBuilder` takes each node's output shape from the op's own ``infer_shapes``, so
a test states only the input, the constants, the op and its attributes.
"""
from __future__ import annotations

import numpy as np

from pqc.intmath import reciprocal
from pqc.intops import get_int_op
from pqc.ir import Graph, Node, Value


class IntGraphBuilder:
    """Append-only construction of an integer `Graph`; helpers return the new value's name."""

    def __init__(self, name: str = "int_test") -> None:
        self.graph = Graph(name)

    def input(self, name: str, shape: tuple[int, ...], dtype: str = "int8", exp: int = -4) -> str:
        self.graph.add_value(Value(name, tuple(shape), dtype, meta={"exp": exp, "bits": 8, "signed": dtype != "uint8"}))
        self.graph.inputs.append(name)
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        return self.graph.add_const(name, np.asarray(array)).name

    def op(self, op: str, inputs: list[str], dtype: str = "int8", exp: int = -4, **attrs) -> str:
        """Add ``op``; its output gets the simulated shape, ``dtype`` and exponent ``exp``."""
        g = self.graph
        out = g.unique_name(f"{op.lower()}_out")
        node = Node(op, list(inputs), [out], attrs, name=g.unique_name(f"{op.lower()}_node"))
        (shape,) = get_int_op(op).infer_shapes(node, g)
        bits = {"int8": 8, "uint8": 8, "int32": 32}[dtype]
        g.add_value(Value(out, shape, dtype, meta={"exp": exp, "bits": bits, "signed": dtype != "uint8"}))
        g.nodes.append(node)
        return out

    def build(self, *outputs: str) -> Graph:
        self.graph.outputs = list(outputs)
        return self.graph


def random_weights(rng: np.random.Generator, shape: tuple[int, ...], sparsity: float = 0.3) -> np.ndarray:
    """int8 weights with some exact zeros (which must cost nothing) and the extremes -128/127."""
    w = rng.integers(-128, 128, size=shape)
    w[rng.random(shape) < sparsity] = 0
    flat = w.reshape(-1)
    flat[:2] = (-128, 127)[: flat.size]
    return w.astype(np.int8)


def conv(b: IntGraphBuilder, x: str, rng: np.random.Generator, cout: int, k: int = 3, stride: int = 1,
         pads: tuple[int, int, int, int] = (1, 1, 1, 1), dilation: int = 1, group: int = 1,
         shift: int = 9, dtype: str = "int8", lo: int = -128, hi: int = 127) -> str:
    """A QConv of random int8 weights and biases; per-channel shifts scattered around ``shift``."""
    cin = b.graph.values[x].shape[1]
    w = b.const("w", random_weights(rng, (cout, cin // group, k, k)))
    bias = b.const("b", rng.integers(-3000, 3000, cout).astype(np.int32))
    shifts = tuple(int(s) for s in shift + rng.integers(-1, 2, cout))
    return b.op("QConv", [x, w, bias], dtype=dtype, kernel_shape=(k, k), strides=(stride, stride), pads=pads,
                dilations=(dilation, dilation), group=group, shift=shifts, lo=lo, hi=hi)


def avg_attrs(divisors: list[int], **attrs) -> dict:
    """QAvgPool attributes with one 8-bit reciprocal per distinct window divisor."""
    return dict(recip=tuple((d, *reciprocal(d, 255)) for d in sorted(set(divisors))), **attrs)


def zoo(seed: int = 0) -> Graph:
    """A small CNN that uses every integer op, so one build exercises every kernel."""
    rng = np.random.default_rng(seed)
    b = IntGraphBuilder("zoo")
    x = b.input("x", (1, 3, 12, 12))
    c1 = conv(b, x, rng, 6, shift=9)
    p = b.op("QMaxPool", [c1], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    dw = conv(b, p, rng, 6, group=6, shift=8)
    r = b.op("QAdd", [p, dw], shift_a=1, shift_b=0, shift=1, lo=0, hi=127, negate_b=False)
    a = b.op("QAffine", [r, b.const("m", rng.integers(-40, 40, 6).astype(np.int32)),
                         b.const("mb", rng.integers(-50, 50, 6).astype(np.int32))], shift=(3,) * 6, lo=-128, hi=127)
    t = b.op("QLut", [a, b.const("t", np.clip(np.arange(-128, 128), -20, 100).astype(np.int8))], in_min=-128)
    cat = b.op("QConcat", [t, p], axis=1, shifts=(0, 1), lo=-128, hi=127)
    avg = b.op("QAvgPool", [cat], **avg_attrs([4, 6, 9], kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                                              ceil_mode=0, count_include_pad=0), shift_base=0, lo=-128, hi=127)
    m, k = reciprocal(9, 255)
    g = b.op("QGlobalAvgPool", [avg], m=m, k=k, shift_base=0, lo=-128, hi=127)
    f = b.op("QReshape", [g], shape=(1, 12), keep_batch=True)
    fc = b.op("QGemm", [f, b.const("fw", random_weights(rng, (10, 12))), b.const("fb", np.zeros(10, np.int32))],
              shift=(6,) * 10, lo=-128, hi=127)
    return b.build(fc)


def random_int_inputs(graph: Graph, n: int = 5, seed: int = 0) -> np.ndarray:
    """``n`` random int8 samples of the graph's input shape."""
    shape = graph.values[graph.inputs[0]].shape[1:]
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)
