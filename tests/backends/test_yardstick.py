"""The int8 yardstick C (`pqc.backends.yardstick`) computes the simulator's integers: tiny
graphs that together hold every integer op and its edge cases, built with the host gcc and called through ctypes. Skipped,
saying so, when gcc is not installed."""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from int_graph_builder import IntGraphBuilder, avg_attrs, conv, random_int_inputs, random_weights, zoo
from pqc.backends.harness import missing_tools, run_tool
from pqc.backends.simulator import simulate
from pqc.backends.yardstick import PREFIX, emit_yardstick
from pqc.errors import PqcError
from pqc.intmath import reciprocal
from pqc.intops.window import avg_divisors
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


def windows(seed: int = 0) -> Graph:
    """The window and table edge cases `zoo` lacks: a dilated, padded ceil-mode max pool over
    uint8, a ceil-mode average pool counting its padding (clipped last windows, several
    divisors), a concat on the height axis with a left shift, a uint8 table and an affine with
    negative multipliers and per-channel shifts into an int32 output."""
    rng = np.random.default_rng(seed)
    b = IntGraphBuilder("windows")
    x = b.input("x", (1, 3, 11, 10))
    c = conv(b, x, rng, 3, shift=9, dtype="uint8", lo=0, hi=255)
    mp = b.op("QMaxPool", [c], dtype="uint8", kernel_shape=(3, 2), strides=(2, 2), pads=(1, 1, 1, 1),
              dilations=(2, 1), ceil_mode=1)
    pool = dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 0, 1), ceil_mode=1, count_include_pad=1)
    divisors = avg_divisors(b.graph.values[c].shape[2:], pool).reshape(-1).tolist()
    ap = b.op("QAvgPool", [c], **avg_attrs(divisors, **pool), shift_base=1, lo=-128, hi=127)
    t = b.op("QLut", [mp, b.const("t", rng.integers(-128, 128, 256).astype(np.int8))], in_min=0)
    cat = b.op("QConcat", [t, ap], axis=2, shifts=(-1, 1), lo=-128, hi=127)
    af = b.op("QAffine", [cat, b.const("m", np.array([-300, 7, 1 << 12], np.int32)),
                          b.const("mb", np.array([5, -9000, 0], np.int32))], dtype="int32", shift=(2, -1, 0),
              lo=-(1 << 31), hi=(1 << 31) - 1)
    return b.build(af)


@pytest.mark.skipif(bool(GCC_MISSING), reason=f"yardstick on the host: {GCC_MISSING}")
@pytest.mark.parametrize("make", [tiny, zoo, windows])
def test_yardstick_c_matches_the_simulator(tmp_path: Path, make) -> None:
    graph = make()
    out = emit_yardstick(graph, tmp_path)
    lib = tmp_path / "yardstick.so"
    run_tool(["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-shared", "-fPIC",
              str(out / f"{PREFIX}.c"), "-o", str(lib)], "gcc yardstick.c")
    run = ctypes.CDLL(str(lib)).yardstick_run
    x = random_int_inputs(graph, 20)
    expected = simulate(graph, x)[graph.outputs[0]].reshape(len(x), -1)
    got = np.zeros_like(expected, dtype=graph.values[graph.outputs[0]].dtype)  # the C output's type
    for sample, row in zip(x, got):
        sample = np.ascontiguousarray(sample)
        assert run(sample.ctypes.data_as(ctypes.c_void_p), row.ctypes.data_as(ctypes.c_void_p)) == 0
    np.testing.assert_array_equal(got, expected)


def test_an_unknown_op_is_refused_by_name(tmp_path: Path) -> None:
    graph = tiny()
    graph.nodes[0].op = "QFuture"
    with pytest.raises(PqcError, match="no QFuture"):
        emit_yardstick(graph, tmp_path)
