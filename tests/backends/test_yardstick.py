"""The int8 yardstick C (`pqc.backends.yardstick`) computes the simulator's integers: a tiny
graph of every op it covers, built with the host gcc and called through ctypes. Skipped,
saying so, when gcc is not installed."""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from int_graph_builder import IntGraphBuilder, conv, random_int_inputs, random_weights
from pqc.backends.harness import missing_tools, run_tool
from pqc.backends.simulator import simulate
from pqc.backends.yardstick import PREFIX, emit_yardstick
from pqc.errors import PqcError
from pqc.intmath import reciprocal
from pqc.ir import Graph

GCC_MISSING = missing_tools(("gcc",))


def tiny(seed: int = 0) -> Graph:
    """Strided, asymmetrically padded, dilated and depthwise convolutions, an Add and a Sub, a
    global average pool, a flatten and a Gemm whose int32 logits need a left shift."""
    rng = np.random.default_rng(seed)
    b = IntGraphBuilder("yard")
    x = b.input("x", (1, 2, 9, 9))
    c1 = conv(b, x, rng, 4, stride=2, pads=(0, 1, 1, 0), shift=9, dtype="uint8", lo=0, hi=255)
    c2 = conv(b, c1, rng, 4, dilation=2, pads=(2, 2, 2, 2), shift=10)
    dw = conv(b, c1, rng, 4, group=4, shift=8)
    s = b.op("QAdd", [c2, dw], shift_a=1, shift_b=0, shift=1, lo=-128, hi=127, negate_b=True)
    r = b.op("QAdd", [s, c1], shift_a=0, shift_b=2, shift=2, lo=0, hi=127, negate_b=False)
    m, k = reciprocal(16, 255)
    g = b.op("QGlobalAvgPool", [r], m=m, k=k, shift_base=-1, lo=0, hi=255, dtype="uint8")
    f = b.op("QReshape", [g], shape=(1, 4), keep_batch=True, dtype="uint8")
    fc = b.op("QGemm", [f, b.const("fw", random_weights(rng, (3, 4))), b.const("fb", np.arange(3, dtype=np.int32))],
              dtype="int32", shift=(-1, 0, 1), lo=-(1 << 31), hi=(1 << 31) - 1)
    return b.build(fc)


@pytest.mark.skipif(bool(GCC_MISSING), reason=f"yardstick on the host: {GCC_MISSING}")
def test_yardstick_c_matches_the_simulator(tmp_path: Path) -> None:
    graph = tiny()
    out = emit_yardstick(graph, tmp_path)
    lib = tmp_path / "yardstick.so"
    run_tool(["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-shared", "-fPIC",
              str(out / f"{PREFIX}.c"), "-o", str(lib)], "gcc yardstick.c")
    run = ctypes.CDLL(str(lib)).yardstick_run
    x = random_int_inputs(graph, 20)
    expected = simulate(graph, x)[graph.outputs[0]].reshape(len(x), -1)
    got = np.zeros_like(expected, dtype=np.int32)
    for sample, row in zip(x, got):
        sample = np.ascontiguousarray(sample)
        assert run(sample.ctypes.data_as(ctypes.c_void_p), row.ctypes.data_as(ctypes.c_void_p)) == 0
    np.testing.assert_array_equal(got, expected)


def test_an_uncovered_op_is_refused_by_name(tmp_path: Path) -> None:
    b = IntGraphBuilder()
    x = b.input("x", (1, 1, 4, 4))
    y = b.op("QMaxPool", [x], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    with pytest.raises(PqcError, match="no QMaxPool"):
        emit_yardstick(b.build(y), tmp_path)
