"""Test helper: hand-built integer IR graphs (what `pqc.passes.lower` produces), op by op.

`IntGraphBuilder` takes each node's output shape from the op's own ``infer_shapes``, so
a test states only the input, the constants, the op and its attributes.
"""
from __future__ import annotations

import numpy as np

from pqc.backends.intmath import reciprocal
from pqc.backends.intops import get_int_op
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
