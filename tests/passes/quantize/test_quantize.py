"""The baseline PoT quantizer: grids, the Lp(2.4) search, annotations, calibration errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ir_builder import GraphBuilder, conv_attrs
from pqc.errors import DataError, ModelError, PqcError
from pqc.executor import FloatExecutor
from pqc.ir import Graph
from pqc.passes import canonicalize, quantize
from pqc.passes.quantize.pot_scales import int_grid, lp_scales, minmax_scales, pot_exponents, pot_grid
from pqc.quant import ActQuant, WeightQuant, get_quant

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- grids and search
@pytest.mark.parametrize("bits,top", [(2, 1), (3, 4), (4, 64), (5, 64), (8, 64)])
def test_pot_grid_levels_are_zero_or_signed_powers_of_two(bits, top):
    levels = pot_grid(bits).levels
    magnitudes = np.abs(levels[levels != 0])
    assert 0 in levels and np.all(magnitudes & (magnitudes - 1) == 0)
    assert levels.max() == top and levels.min() == -top and len(levels) <= 2 ** bits


def test_int_grid_ranges():
    assert (int_grid(4, signed=True, symmetric=True).levels.min(), int_grid(4, True, True).top) == (-7, 7)
    assert (int_grid(4, signed=True).levels.min(), int_grid(4, signed=True).top) == (-8, 7)
    assert (int_grid(4, signed=False).levels.min(), int_grid(4, signed=False).top) == (0, 15)


def test_grid_round_is_nearest_level():
    grid = pot_grid(4)
    units = np.random.default_rng(1).uniform(-100, 100, 1000)
    brute = grid.levels[np.argmin(np.abs(units[:, None] - grid.levels[None, :]), axis=1)]
    np.testing.assert_array_equal(grid.round(units), brute)


def _reference_lp_scale(x: np.ndarray, top: int, lo: int) -> float:
    """Straightforward re-implementation of RAPQ's search for one signed row."""
    best, best_err = None, math.inf
    for i in range(80):
        s = np.abs(x).max() * (1 - 0.01 * i) / top
        q = np.clip(np.floor(x / s + 0.5), lo, top) * s
        err = np.mean(np.abs(x - q) ** 2.4)
        if err < best_err:
            best, best_err = s, err
    return best


def test_lp_search_matches_reference_and_clips_heavy_tails():
    rng = np.random.default_rng(3)
    rows = rng.standard_t(df=2, size=(6, 4000))
    grid = int_grid(4, signed=True, symmetric=True)
    scales = lp_scales(rows, grid)
    for row, s in zip(rows, scales):
        assert s == pytest.approx(_reference_lp_scale(row, 7, -7), rel=1e-12)
    assert np.all(scales * grid.top < np.abs(rows).max(axis=1) * 0.9)  # clips inside the range
    np.testing.assert_allclose(minmax_scales(rows, grid) * 7, np.abs(rows).max(axis=1))


def test_lp_search_keeps_full_range_on_uniform_data():
    rows = np.linspace(-1, 1, 15)[None, :]  # exactly the 4-bit grid: no clipping is best
    assert lp_scales(rows, int_grid(4, True, True))[0] == pytest.approx(1 / 7)


def test_pot_exponent_rounds_log2():
    np.testing.assert_array_equal(pot_exponents(np.array([1.0, 0.7, 0.6, 3.0, 0.0]), fallback=-3), [0, -1, -1, 2, -3])


# ----------------------------------------------------------------------------- the pass
def net(dynamic: bool = True) -> Graph:
    """conv(relu) -> conv -> maxpool -> flatten -> gemm(relu) -> gemm, canonicalized."""
    rng = np.random.default_rng(5)
    b = GraphBuilder(dynamic_batch=dynamic)
    x = b.input("x", (1, 2, 8, 8))
    y = b.op("Conv", [x, b.const("w1", rng.standard_normal((4, 2, 3, 3)).astype(np.float32)),
                      b.const("b1", rng.standard_normal(4).astype(np.float32))], **conv_attrs())
    y = b.op("Relu", [y])
    w2 = rng.standard_t(3, (6, 4, 3, 3)).astype(np.float32)
    w2[2] = 0.0  # a pruned channel
    y = b.op("Conv", [y, b.const("w2", w2)], **conv_attrs(stride=2))
    y = b.op("MaxPool", [y], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    y = b.op("Flatten", [y], axis=1)
    y = b.op("Gemm", [y, b.const("w3", rng.standard_normal((24, 16)).astype(np.float32) * 0.2)],
             alpha=1.0, beta=1.0, transA=0, transB=0)
    y = b.op("Relu", [y])
    y = b.op("Gemm", [y, b.const("w4", rng.standard_normal((10, 16)).astype(np.float32)),
                      b.const("b4", np.zeros(10, np.float32))], alpha=1.0, beta=1.0, transA=0, transB=1)
    return canonicalize(b.build(y))


def calib(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2, 8, 8)).astype(np.float32)


def layers(g: Graph):
    return [n for n in g.nodes if n.op in ("Conv", "Gemm")]


@pytest.mark.parametrize("method", ["lp", "naive"])
@pytest.mark.parametrize("fmt", ["int", "pot"])
def test_every_value_annotated_with_integer_exponents(method, fmt):
    g = net()
    q = quantize(g, calib(), method=method, wbits=3, abits=5, weight_format=fmt)
    assert all(get_quant(g, name) is None for name in g.values)  # input untouched
    for name in q.activations():
        a = get_quant(q, name)
        assert isinstance(a, ActQuant) and type(a.exp) is int, name
    first, mid, gemm, last = layers(q)
    for layer, bits in zip((first, mid, gemm, last), (8, 3, 3, 8)):
        w = get_quant(q, layer.inputs[1])
        assert isinstance(w, WeightQuant) and (w.bits, w.fmt, w.out_axis) == (bits, fmt, 0)
        assert w.q.shape == q.values[layer.inputs[1]].shape and np.issubdtype(w.q.dtype, np.integer)
        assert np.issubdtype(w.exps.dtype, np.integer) and w.exps.shape == (w.q.shape[0],)
        grid = int_grid(bits, True, True) if fmt == "int" else pot_grid(bits)
        assert np.isin(w.q, grid.levels).all()
        if fmt == "pot":
            mags = np.abs(w.q[w.q != 0]).astype(np.int64)
            assert np.all(mags & (mags - 1) == 0)
        # dequantized weights are within half a step of the weights clipped to the grid's range
        weight = q.const(layer.inputs[1]).reshape(w.q.shape[0], -1).astype(np.float64)
        step = np.exp2(w.exps.astype(np.float64))[:, None]
        deq = w.dequantize().reshape(weight.shape)
        if fmt == "int":
            clipped = np.clip(weight, -grid.top * step, grid.top * step)
            assert np.all(np.abs(deq - clipped) <= step / 2 + 1e-7)
        else:  # nearest level: no level is closer than the chosen one
            levels = grid.levels[None, None, :] * step[:, :, None]
            assert np.allclose(np.abs(deq - weight), np.abs(weight[..., None] - levels).min(axis=-1), atol=1e-6)
    assert np.all(get_quant(q, mid.inputs[1]).q[2] == 0)  # the pruned channel stays zero


def test_bits_signs_sharing_and_accumulator():
    q = quantize(net(), calib(), wbits=4, abits=4)
    first, mid, gemm, last = layers(q)
    (x,) = q.inputs
    assert get_quant(q, x) .bits == 8 and get_quant(q, x).signed
    assert get_quant(q, first.outputs[0]) == ActQuant(8, False, get_quant(q, first.outputs[0]).exp)  # relu fused
    assert get_quant(q, mid.outputs[0]).bits == 4 and get_quant(q, mid.outputs[0]).signed
    pool = next(n for n in q.nodes if n.op == "MaxPool")
    flat = next(n for n in q.nodes if n.op == "Flatten")
    assert get_quant(q, pool.outputs[0]) is get_quant(q, mid.outputs[0]) is get_quant(q, flat.outputs[0])
    assert get_quant(q, gemm.outputs[0]).bits == 8 and not get_quant(q, gemm.outputs[0]).signed  # last layer input
    e_x = get_quant(q, last.inputs[0]).exp
    e_w = get_quant(q, last.inputs[1]).exps
    assert get_quant(q, q.outputs[0]) == ActQuant(32, True, int(e_x + e_w.min()))


def test_first_last_bits_none_uses_wbits_abits_but_input_stays_int8():
    q = quantize(net(), calib(), wbits=2, abits=6, first_last_bits=None)
    assert [get_quant(q, n.inputs[1]).bits for n in layers(q)] == [2, 2, 2, 2]
    assert get_quant(q, q.inputs[0]).bits == 8 and get_quant(q, layers(q)[0].outputs[0]).bits == 6


def test_naive_activation_exponent_is_nearest_pot_of_the_range():
    g, data = net(), calib()
    q = quantize(g, data, method="naive", abits=6)
    first = layers(q)[0]
    seen = FloatExecutor(g).run(data, capture=[first.outputs[0], q.inputs[0]])
    relu_max = seen[first.outputs[0]].max()
    assert get_quant(q, first.outputs[0]).exp == round(math.log2(relu_max / 255))  # 8 bit, unsigned
    x_max = np.abs(seen[q.inputs[0]]).max()
    assert get_quant(q, q.inputs[0]).exp == round(math.log2(x_max / 127))


def test_lp_activation_clip_not_wider_than_naive():
    g, data = net(), calib(32)
    lp, naive = quantize(g, data, method="lp", abits=4), quantize(g, data, method="naive", abits=4)
    exps = [(get_quant(lp, v).exp, get_quant(naive, v).exp) for v in lp.activations()[:-1]]
    assert all(a <= b for a, b in exps) and any(a < b for a, b in exps)


def test_deterministic_and_independent_of_sample_cap_for_naive():
    g, data = net(), calib(24)
    a, b = quantize(g, data, seed=3), quantize(g, data, seed=3)
    for name in a.activations():
        assert get_quant(a, name) == get_quant(b, name)
    for layer in layers(a):
        np.testing.assert_array_equal(get_quant(a, layer.inputs[1]).q, get_quant(b, layer.inputs[1]).q)
    small = quantize(g, data, method="naive", max_samples=50, batch_size=5)
    full = quantize(g, data, method="naive")
    assert all(get_quant(small, n) == get_quant(full, n) for n in a.activations())  # extremes are exact


def test_fixed_batch_graph_runs_in_declared_batches():
    g = net(dynamic=False)
    q = quantize(g, calib(4))
    assert get_quant(q, q.outputs[0]).bits == 32
    with pytest.raises(DataError, match="shape"):
        quantize(g, calib(3)[:, :1])


@pytest.mark.parametrize("data,message", [
    (None, "required"),
    (np.zeros((4, 2, 8, 8), np.int8), "float array"),
    ([[0.0]], "float array"),
    (np.zeros((4, 3, 8, 8), np.float32), r"shape \[4, 3, 8, 8\], expected \[N, 2, 8, 8\]"),
    (np.zeros((2, 8, 8), np.float32), "shape"),
    (np.zeros((0, 2, 8, 8), np.float32), "shape"),
    (np.full((2, 2, 8, 8), np.nan, np.float32), "NaN"),
    ({"y": np.zeros((2, 2, 8, 8), np.float32)}, "do not match"),
])
def test_calibration_data_errors(data, message):
    with pytest.raises(DataError, match=message):
        quantize(net(), data)


@pytest.mark.parametrize("options,message", [
    ({"method": "max"}, "unknown method 'max'; known: lp, naive"),
    ({"weight_format": "apot"}, "unknown weight_format"),
    ({"wbits": 9}, r"wbits must be an integer in 2..8"),
    ({"abits": 3}, r"abits must be an integer in 4..8"),
    ({"first_last_bits": 1}, "first_last_bits"),
])
def test_option_errors(options, message):
    with pytest.raises(PqcError, match=message):
        quantize(net(), calib(2), **options)


def test_non_canonical_gemm_is_refused():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 4))
    y = b.op("Gemm", [x, b.const("w", np.ones((4, 3), np.float32))], alpha=1.0, beta=1.0, transA=0, transB=0)
    with pytest.raises(ModelError, match="gemm_node.*not canonical"):
        quantize(b.build(y), np.ones((2, 4), np.float32))


def test_input_preprocessing_stays_8_bit_and_sign_follows_the_ops():
    rng = np.random.default_rng(2)
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 1, 4, 4))
    y = b.op("Mul", [b.op("Add", [x, b.const("shift", np.float32(-0.5))]), b.const("s", np.float32(4.0))])
    y = b.op("Conv", [y, b.const("w", rng.standard_normal((3, 1, 3, 3)).astype(np.float32))], **conv_attrs())
    y = b.op("Clip", [y], min=-1.0, max=1.0)
    z = b.op("Concat", [y, b.op("Sigmoid", [y])], axis=1)
    z = b.op("GlobalAveragePool", [z])
    w2 = b.const("w2", rng.standard_normal((2, 6, 1, 1)).astype(np.float32))
    z = b.op("Conv", [z, w2], **conv_attrs(k=1, pads=(0, 0, 0, 0)))
    q = quantize(canonicalize(b.build(z)), rng.standard_normal((8, 1, 4, 4)).astype(np.float32), abits=4)
    kinds = {n.op: get_quant(q, n.outputs[0]) for n in q.nodes}
    assert (kinds["Add"].bits, kinds["Mul"].bits) == (8, 8) and kinds["Add"].signed
    assert kinds["Sigmoid"].bits == 4 and not kinds["Sigmoid"].signed
    assert kinds["Concat"].signed and kinds["GlobalAveragePool"].signed  # one signed operand
    assert get_quant(q, q.outputs[0]).bits == 32


@pytest.mark.parametrize("options", [{"wbits": 8}, {"wbits": 2, "abits": 4, "weight_format": "pot"}])
def test_annotations_lower_and_simulate_close_to_float(options):
    """The annotations are what lowering consumes: the integer program tracks the float net."""
    lower = pytest.importorskip("pqc.passes.lower").lower
    from pqc.backends.simulator import dequantize, quantize_input, simulate

    g, data = net(), calib(32)
    program = lower(quantize(g, data, **options))
    y = dequantize(program, program.outputs[0], simulate(program, quantize_input(program, data))[program.outputs[0]])
    ref = FloatExecutor(g).run(data)[g.outputs[0]]
    sqnr = 10 * np.log10((ref ** 2).mean() / ((y - ref) ** 2).mean())
    assert sqnr > (15 if options["wbits"] == 8 else 0)


def test_lp_pot_exponent_is_the_better_neighbour_by_lp_error() -> None:
    """Brute force over every exponent near the row's scale: the chosen one has the least
    Lp(2.4) error of the two neighbours of the Lp scale, and never clips a channel whose
    nearest-PoT rounding would cut its largest weight by more than the step it saves."""
    from pqc.passes.quantize.pot_scales import lp_errors, lp_pot_exponents, lp_scales

    rng = np.random.default_rng(3)
    grid = int_grid(8, signed=True, symmetric=True)
    rows = rng.standard_normal((32, 27)) * rng.uniform(0.01, 1.0, (32, 1))
    exps = lp_pot_exponents(rows, grid)
    low = np.floor(np.log2(lp_scales(rows, grid))).astype(np.int64)
    for r in range(len(rows)):
        errs = {e: lp_errors(rows[r:r + 1], np.array([e]), grid)[0] for e in (low[r], low[r] + 1)}
        assert exps[r] in errs and errs[exps[r]] == min(errs.values())
    # a row whose scale 0.59/127 rounds (log2 = -7.74) to 2^-8 would clip its max to 0.496
    row = np.array([[0.593, -0.2, 0.1, 0.05, -0.01, 0.3, -0.4, 0.02, 0.0]])
    assert lp_pot_exponents(row, grid)[0] == -7
    assert pot_exponents(minmax_scales(row, grid))[0] == -8
