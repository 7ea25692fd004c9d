"""range_analysis: sound (no simulated value escapes its interval), tight where it can be, and it
refuses models whose accumulators or shifted values may leave int32, naming the layer."""
from __future__ import annotations

import numpy as np
import pytest
from int_helpers import annotate, conv_int, resnet_like
from ir_builder import GraphBuilder

from pqc.backends.simulator import simulate
from pqc.errors import ModelError
from pqc.passes.lower import lower
from pqc.passes.range_analysis import analyze_ranges


def _gemm_graph(k: int, w_int: np.ndarray, e_y: int, y_bits: int = 32, bias: np.ndarray | None = None):
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, k))
    exps = np.zeros(w_int.shape[0], dtype=np.int64)
    inputs = [x, gb.const("w", w_int.astype(np.float32))]
    if bias is not None:
        inputs.append(gb.const("b", bias.astype(np.float32)))
    y = gb.op("Gemm", inputs, alpha=1.0, beta=1.0, transA=0, transB=1)
    return annotate(gb.build(y), {x: (8, True, 0), y: (y_bits, True, e_y)}, {"w": (w_int, exps)}), y


def test_accumulator_overflow_is_refused_naming_the_layer():
    k = 140_000  # 127 * 128 * 140000 > 2^31
    g, _ = _gemm_graph(k, np.full((1, k), 127, np.int8), 0)
    with pytest.raises(ModelError, match=r"gemm_node.*acc.*int32"):
        lower(g)


def test_just_fitting_accumulator_is_accepted():
    k = 262_000  # 128 * 64 * 262000 < 2^31 - 1 (64 is a single NAF digit, so no shift-add overshoot)
    g, y = _gemm_graph(k, np.full((1, k), 64, np.int8), 0)
    ig = lower(g)
    assert ig.nodes[0].meta["range"]["acc"] == (-128 * 64 * k, 127 * 64 * k)


def test_shift_add_overshoot_is_refused():
    k = 132_000  # 127 * 128 * k fits, but 127 = 128 - 1 builds 129 * 128 * k on the way
    g, y = _gemm_graph(k, np.full((1, k), 127, np.int8), 0)
    with pytest.raises(ModelError, match=r"gemm_node.*shift_add"):
        lower(g)


def test_left_shift_overflow_is_refused():
    g, _ = _gemm_graph(64, np.full((2, 64), 100, np.int8), -12)  # acc << 12 leaves int32
    with pytest.raises(ModelError, match=r"gemm_node.*shifted"):
        lower(g)


def test_huge_bias_is_refused():
    g, _ = _gemm_graph(4, np.ones((2, 4), np.int8), 0, bias=np.array([1e10, 0.0]))
    with pytest.raises(ModelError, match="gemm_node.*bias"):
        lower(g)


def test_intervals_are_tight_for_a_dense_layer():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(3, 50)).astype(np.int8)
    bias = np.array([5.0, -7.0, 0.0])
    g, y = _gemm_graph(50, w, 0, bias=bias)
    ig = lower(g)
    lo, hi = ig.nodes[0].meta["range"]["acc"]
    # the inputs that push each output to its extremes reach the proven interval exactly
    x_hi = np.where(w > 0, 127, -128)
    x_lo = np.where(w > 0, -128, 127)
    out_hi = simulate(ig, x_hi)[y][np.arange(3), np.arange(3)]
    out_lo = simulate(ig, x_lo)[y][np.arange(3), np.arange(3)]
    assert hi == out_hi.max() and lo == out_lo.min()


def test_bounds_hold_on_random_and_extreme_inputs():
    rng = np.random.default_rng(1)
    g = resnet_like(rng)
    ig = lower(g)
    x = np.concatenate([rng.integers(-128, 128, size=(20, 1, 12, 12)),
                        np.full((1, 1, 12, 12), -128), np.full((1, 1, 12, 12), 127)])
    cap = simulate(ig, x, capture=True)
    for node in ig.nodes:
        lo, hi = node.meta["range"]["out"]
        got = cap[node.outputs[0]]
        assert lo <= got.min() and got.max() <= hi, node.name
        if node.op == "QConv":  # the accumulator too, recomputed independently
            w, b = (ig.values[i].data for i in node.inputs[1:])
            a = node.attrs
            acc = conv_int(cap[node.inputs[0]], w, a["pads"], a["strides"], a["dilations"], a["group"])
            acc += b.astype(np.int64).reshape(1, -1, 1, 1)
            alo, ahi = node.meta["range"]["acc"]
            assert alo <= acc.min() and acc.max() <= ahi, node.name


def test_every_node_gets_a_report_and_intermediates_are_named():
    ig = lower(resnet_like(np.random.default_rng(2)))
    ops = {n.op: n.meta["range"] for n in ig.nodes}
    assert set(ops["QConv"]) >= {"out", "acc", "shift_add", "round"}
    assert set(ops["QAdd"]) >= {"out", "aligned_a", "aligned_b", "acc"}
    assert set(ops["QGlobalAvgPool"]) >= {"out", "sum", "acc"}
    assert ops["QGemm"]["out"] == ops["QGemm"]["acc"]  # int32 logits with shift 0: the exact accumulator


def test_analysis_is_rerunnable_and_returns_value_ranges():
    ig = lower(resnet_like(np.random.default_rng(3)))
    ranges = analyze_ranges(ig)
    assert ranges["x"] == (-128, 127)
    assert all(0 <= lo <= hi <= 255 for name, (lo, hi) in ranges.items() if ig.values[name].dtype == "uint8")


def test_shift_add_partial_sums_are_bounded_by_naf_magnitudes():
    # weight 7 = 8 - 1 as shift-adds builds 8x before subtracting: the bound must cover 8 * 127
    gb = GraphBuilder()
    x = gb.input("x", (1, 1))
    y = gb.op("Gemm", [x, gb.const("w", np.array([[7.0]], np.float32))], alpha=1.0, beta=1.0, transA=0, transB=1)
    g = annotate(gb.build(y), {x: (8, True, 0), y: (32, True, 0)}, {"w": (np.array([[7]], np.int8), np.array([0]))})
    r = lower(g).nodes[0].meta["range"]
    assert r["acc"] == (-7 * 128, 7 * 127) and r["shift_add"] == (-9 * 128, 9 * 128)
