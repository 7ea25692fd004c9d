"""QMul, the product of a feature map and a gate: the simulator's integers against an
independent reference, the multiplier-free C bit-exact with the simulator through the harness,
and range analysis refusing a product that may leave int32."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from int_graph_builder import IntGraphBuilder, random_int_inputs
from int_helpers import fmt_range
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import verify
from pqc.backends.simulator import simulate
from pqc.errors import ModelError
from pqc.intmath import reciprocal
from pqc.intops import get_int_op
from pqc.ir import Node
from pqc.passes.range_analysis import analyze_ranges


def gated(shape: tuple[int, ...], bits: int, signed: bool, per_channel: bool, shift: int, seed: int = 0,
          out_dtype: str = "int8"):
    """x -> (global average pool when ``per_channel``) -> a random LUT of ``bits``-bit gate values
    -> QMul(x, gate): the gate is computed from x, as in squeeze-excite."""
    rng = np.random.default_rng(seed)
    b = IntGraphBuilder("qmul")
    x = b.input("x", shape)
    src = x
    if per_channel:
        m, k = reciprocal(shape[2] * shape[3], 255)
        src = b.op("QGlobalAvgPool", [x], m=m, k=k, shift_base=0, lo=-128, hi=127)
    g_lo, g_hi = fmt_range(bits, signed)
    table = rng.integers(g_lo, g_hi + 1, 256)
    table[:2] = g_lo, g_hi  # the extremes, so the worst-case magnitude is exercised
    dtype = "int8" if signed else "uint8"
    g = b.op("QLut", [src, b.const("t", table.astype(dtype))], dtype=dtype, in_min=-128)
    b.graph.values[g].meta["bits"] = bits
    lo, hi = fmt_range(8, out_dtype == "int8")
    y = b.op("QMul", [x, g], dtype=out_dtype, shift=shift, lo=lo, hi=hi)
    return b.build(y), x, g


def reference(x: np.ndarray, g: np.ndarray, shift: int, lo: int, hi: int) -> np.ndarray:
    """Python ints, one element at a time (independent of numpy broadcasting and intmath)."""
    out = np.empty(x.shape, np.int64)
    for idx in np.ndindex(*x.shape):
        gi = tuple(i if d > 1 else 0 for i, d in zip(idx, g.shape))
        p = int(x[idx]) * int(g[gi])
        r = (p + (1 << (shift - 1))) >> shift if shift > 0 else p << -shift
        out[idx] = min(max(r, lo), hi)
    return out


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("shift", [3, 0, -1])
def test_simulate_matches_the_elementwise_reference(per_channel, shift):
    graph, x, g = gated((1, 3, 4, 5), 5, True, per_channel, shift)
    vals = simulate(graph, random_int_inputs(graph, 3), capture=True)
    assert np.array_equal(vals[graph.outputs[0]], reference(vals[x], vals[g], shift, -128, 127))


@pytest.mark.parametrize("bits", range(2, 9))
def test_c_is_bit_exact_with_the_simulator(bits, tmp_path: Path):
    """Random shapes, signed and unsigned gates of every width, per channel and elementwise."""
    rng = np.random.default_rng(bits)
    shape = (1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    for i, (signed, per_channel) in enumerate([(False, True), (True, True), (bool(bits % 2), False)]):
        graph, _, _ = gated(shape, bits, signed, per_channel, shift=int(rng.integers(-1, bits + 2)), seed=bits,
                            out_dtype="int8" if signed else "uint8")
        emit_c(graph, tmp_path / str(i))
        assert verify(graph, tmp_path / str(i), random_int_inputs(graph, 4, seed=bits)).ok


def test_in_place_and_cost():
    graph, x, g = gated((1, 4, 3, 3), 4, False, True, shift=2)
    node = graph.nodes[-1]
    assert get_int_op("QMul").in_place
    # per element: 4 adds + a rounding add, 4 shifts + the requantizing shift
    assert get_int_op("QMul").cost(node, graph) == {"adds": 36 * 5, "shifts": 36 * 5, "dense_weight_bytes": 0,
                                                    "digits": 0, "ideal_adds": 0}


def test_range_analysis_refuses_a_product_beyond_int32():
    b = IntGraphBuilder("wide")
    x = b.input("x", (1, 2, 3, 3))
    wide = b.op("QAffine", [x, b.const("m", np.full(2, 1 << 20, np.int32)), b.const("b", np.zeros(2, np.int32))],
                dtype="int32", shift=(0, 0), lo=-(1 << 27), hi=(1 << 27) - 1)
    g = b.op("QLut", [x, b.const("t", np.full(256, 127, np.int8))], in_min=-128)
    graph = b.build(b.op("QMul", [wide, g], shift=0, lo=-128, hi=127))
    acc = rf"\[{-128 * 2**20 * 127}, {127 * 2**20 * 127}\]"  # x * m spans [-128, 127] * 2^20, the gate is 127
    with pytest.raises(ModelError, match=rf"layer 'qmul_node' \(QMul\): acc may reach {acc}, beyond int32"):
        analyze_ranges(graph)


def test_a_gate_that_does_not_broadcast_per_channel_is_refused():
    node = Node("QMul", ["x", "g"], ["y"], {"shift": 0, "lo": -128, "hi": 127}, "m")
    with pytest.raises(ValueError, match="does not broadcast per channel"):
        get_int_op("QMul").simulate(node, [np.zeros((1, 2, 3, 3)), np.zeros((1, 1, 3, 3))])
