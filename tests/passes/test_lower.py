"""lower: integer programs against exact big-int references and float64 math on dequantized values."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from int_helpers import annotate, conv_int, fmt_range, int_weight, pool_windows, resnet_like, rha, rhu
from ir_builder import GraphBuilder, conv_attrs

from pqc.intops import get_int_op
from pqc.backends.simulator import dequantize, quantize_input, simulate
from pqc.errors import ModelError
from pqc.executor import FloatExecutor
from pqc.passes.lower import lower

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def act_bounds(act, bits: int, signed: bool, e_y: int) -> tuple[int, int]:
    """Integer clamp bounds: the format's range, narrowed by relu / clip bounds rounded half up."""
    lo, hi = fmt_range(bits, signed)
    if act == "relu":
        lo = max(lo, 0)
    elif act is not None:
        lo = max(lo, rhu(Fraction(act[1]) / Fraction(2) ** e_y))
        hi = min(hi, rhu(Fraction(act[2]) / Fraction(2) ** e_y))
    return lo, hi


def apply_act(y: np.ndarray, act) -> np.ndarray:
    if act == "relu":
        return np.maximum(y, 0)
    return y if act is None else np.clip(y, act[1], act[2])


def requant_ref(acc: np.ndarray, shifts: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """clamp(floor(acc / 2^s + 1/2)) per channel (axis 1), in exact rationals."""
    out = np.empty(acc.shape, dtype=np.int64)
    for idx in np.ndindex(*acc.shape):
        out[idx] = min(max(rhu(Fraction(int(acc[idx])) / Fraction(2) ** int(shifts[idx[1]])), lo), hi)
    return out


ACTS = st.sampled_from([None, "relu", ("clip", 0.0, 6.0), ("clip", -1.0, 2.0)])


# ------------------------------------------------------------------ Conv
@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    cin = draw(st.integers(1, 3))
    group, cout = (cin, cin * draw(st.integers(1, 2))) if depthwise else (1, draw(st.integers(1, 4)))
    k, stride, dil = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    span = dil * (k - 1) + 1
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h, w = draw(st.integers(span, 7)), draw(st.integers(span, 7))
    e_w = [draw(st.integers(-8, -4)) for _ in range(cout)]
    return dict(cin=cin, cout=cout, group=group, k=k, stride=stride, dil=dil, pads=pads, h=h, w=w, e_w=e_w,
                e_x=draw(st.integers(-6, -1)), e_y=draw(st.integers(-5, 0)), act=draw(ACTS),
                bits_y=draw(st.integers(4, 8)), signed_y=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(conv_cases())
@SETTINGS
def test_conv_matches_exact_integer_and_float64_references(c):
    rng = np.random.default_rng(c["seed"])
    qw, wf = int_weight(rng, (c["cout"], c["cin"] // c["group"], c["k"], c["k"]), c["e_w"])
    bias = rng.normal(scale=2.0, size=c["cout"]).astype(np.float32)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, c["cin"], c["h"], c["w"]))
    attrs = dict(kernel_shape=(c["k"], c["k"]), strides=(c["stride"],) * 2, dilations=(c["dil"],) * 2,
                 pads=c["pads"], group=c["group"], act=c["act"])
    y = gb.op("Conv", [x, gb.const("w", wf), gb.const("b", bias)], **attrs)
    g = annotate(gb.build(y), {x: (8, True, c["e_x"]), y: (c["bits_y"], c["signed_y"], c["e_y"])},
                 {"w": (qw, c["e_w"])})
    ig = lower(g)
    ig.verify()  # integer ops' shapes agree with the float graph's
    xq = rng.integers(-128, 128, size=(3, c["cin"], c["h"], c["w"]))
    got = simulate(ig, xq)[y].astype(np.int64)

    # exact: integer bias rounded half away, accumulator by int64 loops, rounding in rationals
    e_acc = [c["e_x"] + e for e in c["e_w"]]
    q_b = np.array([rha(Fraction(float(b)) / Fraction(2) ** e) for b, e in zip(bias, e_acc)])
    acc = conv_int(xq, qw, c["pads"], (c["stride"],) * 2, (c["dil"],) * 2, c["group"]) + q_b.reshape(1, -1, 1, 1)
    lo, hi = act_bounds(c["act"], c["bits_y"], c["signed_y"], c["e_y"])
    assert np.array_equal(got, requant_ref(acc, np.array([c["e_y"] - e for e in e_acc]), lo, hi))

    # float64 on dequantized values: within half an output step plus the bias rounding
    ref = FloatExecutor(g).run({x: (xq * 2.0 ** c["e_x"]).astype(np.float32)})[y].astype(np.float64)
    ref = np.clip(ref, lo * 2.0 ** c["e_y"], hi * 2.0 ** c["e_y"])
    tol = 2.0 ** (c["e_y"] - 1) + 2.0 ** (max(e_acc) - 1) + 1e-5 * (1 + np.abs(ref))
    assert np.all(np.abs(dequantize(ig, y, got) - ref) <= tol)


# ------------------------------------------------------------------ Gemm, last layer in int32
@given(st.integers(1, 40), st.integers(1, 12), st.integers(-6, -1), st.integers(0, 2**16), ACTS)
@SETTINGS
def test_gemm_requantized(k, m, e_x, seed, act):
    rng = np.random.default_rng(seed)
    e_w = rng.integers(-9, -4, size=m)
    qw, wf = int_weight(rng, (m, k), e_w)
    bias = rng.normal(size=m).astype(np.float32)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, k))
    y = gb.op("Gemm", [x, gb.const("w", wf), gb.const("b", bias)], alpha=1.0, beta=1.0, transA=0, transB=1, act=act)
    g = annotate(gb.build(y), {x: (8, True, e_x), y: (8, True, -3)}, {"w": (qw, e_w)})
    ig = lower(g)
    xq = rng.integers(-128, 128, size=(4, k))
    got = simulate(ig, xq)[y].astype(np.int64)
    q_b = np.array([rha(Fraction(float(b)) / Fraction(2) ** int(e_x + e)) for b, e in zip(bias, e_w)])
    acc = xq.astype(np.int64) @ qw.astype(np.int64).T + q_b
    lo, hi = act_bounds(act, 8, True, -3)
    assert np.array_equal(got, requant_ref(acc, -3 - (e_x + e_w), lo, hi))


def test_last_gemm_keeps_exact_int32_accumulator():
    rng = np.random.default_rng(1)
    e_w = np.array([-7, -5, -6])
    qw, wf = int_weight(rng, (3, 20), e_w)
    bias = np.array([0.3, -1.7, 0.01], np.float32)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 20))
    y = gb.op("Gemm", [x, gb.const("w", wf), gb.const("b", bias)], alpha=1.0, beta=1.0, transA=0, transB=1)
    e_y = -4 + int(e_w.min())
    g = annotate(gb.build(y), {x: (8, True, -4), y: (32, True, e_y)}, {"w": (qw, e_w)})
    ig = lower(g)
    (node,) = ig.nodes
    assert ig.values[y].dtype == "int32" and all(s <= 0 for s in node.attrs["shift"])
    xq = rng.integers(-128, 128, size=(5, 20))
    got = dequantize(ig, y, simulate(ig, xq)[y])
    q_b = np.array([rha(Fraction(float(b)) / Fraction(2) ** int(-4 + e)) for b, e in zip(bias, e_w)])
    exact = (xq @ qw.astype(np.int64).T + q_b) * np.exp2(-4.0 + e_w)  # every value exact in float64
    assert np.array_equal(got, exact)


def test_gemm_with_untransposed_weights():
    rng = np.random.default_rng(2)
    qw, wf = int_weight(rng, (4, 6), np.full(4, -5))
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 6))
    y = gb.op("Gemm", [x, gb.const("w", wf.T.copy())], alpha=1.0, beta=1.0, transA=0, transB=0)
    g = gb.build(y)
    annotate(g, {x: (8, True, -3), y: (8, True, -2)})
    from pqc.quant import WeightQuant, set_quant
    set_quant(g, "w", WeightQuant(8, "int", np.full(4, -5), qw.T.copy(), out_axis=1))
    xq = rng.integers(-128, 128, size=(3, 6))
    got = simulate(lower(g), xq)[y]
    assert np.array_equal(got, requant_ref(xq @ qw.astype(np.int64).T, np.full(4, -2 + 8), -128, 127))


# ------------------------------------------------------------------ Add / Sub / Concat
@given(st.integers(-6, 0), st.integers(-6, 0), st.integers(-7, 1), st.booleans(), st.booleans(),
       st.sampled_from([None, "relu"]), st.integers(0, 2**16))
@SETTINGS
def test_add_and_sub_align_exactly(e_a, e_b, e_y, sub, signed_y, act, seed):
    rng = np.random.default_rng(seed)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 2, 3, 3))
    a, b = gb.op("Clip", [x], min=-8.0, max=8.0), gb.op("Relu", [x])  # signed and unsigned operands
    y = gb.op("Sub", [a, b]) if sub else gb.op("Add", [a, b], act=act)
    g = annotate(gb.build(y), {x: (8, True, -4), a: (8, True, e_a), b: (8, False, e_b), y: (8, signed_y, e_y)})
    ig = lower(g)
    cap = simulate(ig, rng.integers(-128, 128, size=(4, 2, 3, 3)), capture=True)
    qa, qb, out = cap[a], cap[b], cap[y]
    lo, hi = act_bounds(None if sub else act, 8, signed_y, e_y)
    for idx in np.ndindex(*qa.shape):
        real = Fraction(int(qa[idx])) * Fraction(2) ** e_a + (-1 if sub else 1) * Fraction(int(qb[idx])) * Fraction(2) ** e_b
        assert out[idx] == min(max(rhu(real / Fraction(2) ** e_y), lo), hi)


def test_concat_requantizes_each_input():
    rng = np.random.default_rng(3)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 2, 4, 4))
    qw1, w1 = int_weight(rng, (3, 2, 1, 1), [-5] * 3)
    qw2, w2 = int_weight(rng, (2, 2, 1, 1), [-6] * 2)
    p1 = gb.op("Conv", [x, gb.const("w1", w1)], **conv_attrs(1, pads=(0, 0, 0, 0)))
    p2 = gb.op("Conv", [x, gb.const("w2", w2)], **conv_attrs(1, pads=(0, 0, 0, 0)))
    y = gb.op("Concat", [p1, p2, x], axis=1)
    exps = {x: -4, p1: -2, p2: -5, y: -3}
    g = annotate(gb.build(y), {k: (8, True, e) for k, e in exps.items()}, {"w1": (qw1, [-5] * 3), "w2": (qw2, [-6] * 2)})
    ig = lower(g)
    cap = simulate(ig, rng.integers(-128, 128, size=(2, 2, 4, 4)), capture=True)
    parts = []
    for name in (p1, p2, x):
        parts.append(requant_ref(cap[name].astype(np.int64), np.full(cap[name].shape[1], exps[y] - exps[name]), -128, 127))
    assert np.array_equal(cap[y], np.concatenate(parts, axis=1))


# ------------------------------------------------------------------ pools
@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, min(k[i % 2] - 1, 1))) for i in range(4))
    dil = draw(st.integers(1, 2))  # max pool only
    span = tuple(dil * (kk - 1) + 1 for kk in k)
    return dict(k=k, s=s, pads=pads, dil=dil, h=draw(st.integers(span[0], 7)), w=draw(st.integers(span[1], 7)),
                ceil=draw(st.integers(0, 1)), incl=draw(st.integers(0, 1)), e_x=draw(st.integers(-5, 0)),
                e_y=draw(st.integers(-6, 1)), seed=draw(st.integers(0, 2**16)))


@given(pool_cases())
@SETTINGS
def test_maxpool_is_the_window_max(c):
    rng = np.random.default_rng(c["seed"])
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 2, c["h"], c["w"]))
    y = gb.op("MaxPool", [x], kernel_shape=c["k"], strides=c["s"], pads=c["pads"], dilations=(c["dil"],) * 2,
              ceil_mode=c["ceil"])
    g = annotate(gb.build(y), {x: (8, True, c["e_x"]), y: (8, True, c["e_x"])})
    ig = lower(g)
    xq = rng.integers(-128, 128, size=(3, 2, c["h"], c["w"]))
    got = simulate(ig, xq)[y]
    t, l, b, r = c["pads"]
    rows = pool_windows(c["h"], c["k"][0], c["s"][0], t, b, got.shape[2], c["dil"])
    cols = pool_windows(c["w"], c["k"][1], c["s"][1], l, r, got.shape[3], c["dil"])
    for i, (ri, _) in enumerate(rows):
        for j, (cj, _) in enumerate(cols):
            assert np.array_equal(got[:, :, i, j], xq[:, :, ri][:, :, :, cj].max(axis=(2, 3)))
    ref = FloatExecutor(g).run({x: (xq * 2.0 ** c["e_x"]).astype(np.float32)})[y]
    assert np.array_equal(dequantize(ig, y, got), ref)


@given(pool_cases())
@SETTINGS
def test_avgpool_reciprocal_error_bound(c):
    rng = np.random.default_rng(c["seed"])
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 2, c["h"], c["w"]))
    y = gb.op("AveragePool", [x], kernel_shape=c["k"], strides=c["s"], pads=c["pads"], ceil_mode=c["ceil"],
              count_include_pad=c["incl"])
    g = annotate(gb.build(y), {x: (8, True, c["e_x"]), y: (8, True, c["e_y"])})
    ig = lower(g)
    recip = {d: (m, k) for d, m, k in ig.nodes[0].attrs["recip"]}
    xq = rng.integers(-128, 128, size=(3, 2, c["h"], c["w"]))
    got = simulate(ig, xq)[y]
    t, l, b, r = c["pads"]
    rows = pool_windows(c["h"], c["k"][0], c["s"][0], t, b, got.shape[2])
    cols = pool_windows(c["w"], c["k"][1], c["s"][1], l, r, got.shape[3])
    sb = c["e_y"] - c["e_x"]
    for i, (ri, nr) in enumerate(rows):
        for j, (cj, nc) in enumerate(cols):
            d = nr * nc if c["incl"] else len(ri) * len(cj)
            m, k = recip[d]
            sums = xq[:, :, ri][:, :, :, cj].sum(axis=(2, 3))
            for idx in np.ndindex(*sums.shape):
                s = int(sums[idx])
                # exact: the documented integer formula
                assert got[idx + (i, j)] == min(max(rhu(Fraction(s * m) / Fraction(2) ** (k + sb)), -128), 127)
                # error bound against the true mean: half a step plus the reciprocal's error
                mean = Fraction(s, d) / Fraction(2) ** sb
                bound = Fraction(1, 2) + abs(Fraction(s) / Fraction(2) ** sb) * abs(Fraction(m, 2 ** k) - Fraction(1, d))
                assert abs(got[idx + (i, j)] - min(max(mean, -128), 127)) <= bound
    ref = FloatExecutor(g).run({x: (xq * 2.0 ** c["e_x"]).astype(np.float32)})[y]
    assert np.all(np.abs(dequantize(ig, y, got) - np.clip(ref, -128 * 2.0 ** c["e_y"], 127 * 2.0 ** c["e_y"]))
                  <= 2.0 ** c["e_y"] * (0.5 + 2 ** -14) + 1e-5)


@pytest.mark.parametrize("hw,e_x,e_y", [((7, 7), -4, -4), ((4, 4), -3, -5), ((5, 3), -2, 0)])
def test_global_avgpool(hw, e_x, e_y):
    rng = np.random.default_rng(4)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 3) + hw)
    r = gb.op("Relu", [x])
    y = gb.op("GlobalAveragePool", [r])
    g = annotate(gb.build(y), {x: (8, True, e_x + 1), r: (8, False, e_x), y: (8, False, e_y)})
    ig = lower(g)
    a = ig.nodes[1].attrs
    cap = simulate(ig, rng.integers(-128, 128, size=(4, 3) + hw), capture=True)
    xq, got = cap[r].astype(np.int64), cap[y]
    sums = xq.sum(axis=(2, 3), keepdims=True)
    want = np.vectorize(lambda s: min(max(rhu(Fraction(int(s) * a["m"]) / Fraction(2) ** (a["k"] + e_y - e_x)), 0), 255))(sums)
    assert np.array_equal(got, want)
    mean = xq.mean(axis=(2, 3), keepdims=True) * 2.0 ** (e_x - e_y)
    assert np.all(np.abs(got - np.clip(mean, 0, 255)) <= 0.5 + 255 * 2.0 ** -15)


# ------------------------------------------------------------------ constants: Mul, Div, Add, BN
@pytest.mark.parametrize("op,const", [
    ("Mul", np.array([0.75, -1.3, 0.0], np.float32).reshape(1, 3, 1, 1)),
    ("Div", np.array(3.0, np.float32)),
    ("Add", np.array([0.5, -0.25, 1.0], np.float32).reshape(3, 1, 1)),
    ("Sub", np.array(0.3, np.float32)),
])
def test_affine_by_constant(op, const):
    rng = np.random.default_rng(5)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 3, 4, 4))
    y = gb.op(op, [x, gb.const("c", const)])
    g = annotate(gb.build(y), {x: (8, True, -4), y: (8, True, -5)})
    ig = lower(g)
    assert [n.op for n in ig.nodes] == ["QAffine"]
    xq = rng.integers(-128, 128, size=(3, 3, 4, 4))
    got = dequantize(ig, y, simulate(ig, xq)[y])
    xr = xq * 2.0 ** -4
    ref = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}[op](xr, const)
    ref = np.clip(ref, -128 * 2.0 ** -5, 127 * 2.0 ** -5)
    assert np.all(np.abs(got - ref) <= 2.0 ** -6 + np.abs(xr * 2.0 ** -13) + 1e-9)


def test_standalone_batchnorm_as_affine():
    rng = np.random.default_rng(6)
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 4, 3, 3))
    consts = [gb.const(n, v.astype(np.float32)) for n, v in (
        ("s", rng.uniform(0.5, 1.5, 4)), ("bb", rng.uniform(-0.5, 0.5, 4)),
        ("mu", rng.uniform(-1, 1, 4)), ("var", rng.uniform(0.5, 2, 4)))]
    y = gb.op("BatchNormalization", [x] + consts, epsilon=1e-5, momentum=0.9)
    g = annotate(gb.build(y), {x: (8, True, -4), y: (8, True, -4)})
    ig = lower(g)
    xq = rng.integers(-128, 128, size=(2, 4, 3, 3))
    got = dequantize(ig, y, simulate(ig, xq)[y])
    ref = FloatExecutor(g).run({x: (xq * 2.0 ** -4).astype(np.float32)})[y].astype(np.float64)
    assert np.all(np.abs(got - np.clip(ref, -8, 127 / 16)) <= 2.0 ** -5 + 8 * 2.0 ** -13 + 1e-5)


# ------------------------------------------------------------------ lookup tables
@pytest.mark.parametrize("op,attrs,f", [
    ("Sigmoid", {}, lambda v: 1 / (1 + math.exp(-v))),
    ("LeakyRelu", {"alpha": 0.1}, lambda v: v if v >= 0 else 0.1 * v),
    ("HardSwish", {}, lambda v: v * min(max(v / 6 + 0.5, 0), 1)),
    ("Clip", {"min": 0.0, "max": 6.0}, lambda v: min(max(v, 0.0), 6.0)),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, lambda v: min(max(0.2 * v + 0.5, 0), 1)),
])
@pytest.mark.parametrize("signed_x", [True, False])
def test_lut_is_exact_on_every_input(op, attrs, f, signed_x):
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 256))
    u = gb.op("Relu", [x]) if not signed_x else x  # an unsigned operand comes from a ReLU
    y = gb.op(op, [u], **attrs)
    g = annotate(gb.build(y), {x: (8, True, -4), u: (8, signed_x, -4), y: (8, True, -5)})
    ig = lower(g)
    node = ig.nodes[-1]
    lo, hi = fmt_range(8, signed_x)

    def want(q: int) -> int:
        return min(max(rha(Fraction(f(q * 2.0 ** -4)) * 32), -128), 127)

    table = ig.values[node.inputs[1]].data
    assert table.shape == (256,) and node.attrs["in_min"] == lo
    assert table.tolist() == [want(q) for q in range(lo, hi + 1)]
    cap = simulate(ig, np.arange(-128, 128).reshape(1, 256), capture=True)
    assert cap[y][0].tolist() == [want(int(q)) for q in cap[u][0]]


def test_lut_refuses_wide_input():
    rng = np.random.default_rng(9)
    qw, wf = int_weight(rng, (3, 8), np.full(3, -6))
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 8))
    z = gb.op("Gemm", [x, gb.const("w", wf)], alpha=1.0, beta=1.0, transA=0, transB=1)
    y = gb.op("Sigmoid", [z])
    g = annotate(gb.build(y), {x: (8, True, -4), z: (16, True, -10), y: (8, False, -8)}, {"w": (qw, np.full(3, -6))})
    with pytest.raises(ModelError, match="sigmoid_node.*at most 10 bits"):
        lower(g)


# ------------------------------------------------------------------ structure
def test_reshape_keeps_format_and_softmax_output_dropped():
    rng = np.random.default_rng(7)
    qw, wf = int_weight(rng, (5, 12), np.full(5, -6))
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 3, 2, 2))
    f = gb.op("Flatten", [x], axis=1)
    z = gb.op("Gemm", [f, gb.const("w", wf)], alpha=1.0, beta=1.0, transA=0, transB=1)
    s = gb.op("Softmax", [z], axis=1, coerce_2d=False)
    g = annotate(gb.build(s), {x: (8, True, -3), f: (8, True, -1), z: (32, True, -9), s: (8, False, -8)},
                 {"w": (qw, np.full(5, -6))})
    ig = lower(g)
    assert [n.op for n in ig.nodes] == ["QReshape", "QGemm"]
    assert ig.outputs == [z] and ig.meta["dropped_softmax"] == ["softmax_node"]
    assert ig.values[f].meta["exp"] == -3  # a reshape cannot rescale: it keeps its input's format
    xq = rng.integers(-128, 128, size=(3, 3, 2, 2))
    assert np.array_equal(simulate(ig, xq)[z], xq.reshape(3, 12) @ qw.astype(np.int64).T)
    assert g.outputs == [s] and g.nodes[-1].op == "Softmax"  # input untouched


def squeeze_excite(gate_bits: int = 8, gate_shape: tuple[int, ...] = (1, 3, 1, 1), op: str = "Mul"):
    """x [1, 3, 4, 4] times a hard-sigmoid gate of a pooled (or, for another ``gate_shape``,
    reshaped) x, the gate first: lowering must find which operand is the gate."""
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 3, 4, 4))
    pooled = gb.op("GlobalAveragePool", [x])
    shaped = pooled if gate_shape == (1, 3, 1, 1) else gb.op("Reshape", [pooled], shape=gate_shape, keep_batch=False)
    gate = gb.op("HardSigmoid", [shaped], alpha=0.2, beta=0.5)
    y = gb.op(op, [gate, x])
    acts = {x: (8, True, -4), pooled: (8, True, -4), shaped: (8, True, -4), gate: (gate_bits, False, -gate_bits),
            y: (8, True, -6)}
    return annotate(gb.build(y), acts), x, gate, y


def test_mul_of_two_activations_is_a_qmul_exact_to_the_rounding():
    g, x, gate, y = squeeze_excite(gate_bits=4)
    ig = lower(g)
    node = ig.nodes[-1]
    assert node.op == "QMul" and node.inputs == [x, gate] and node.attrs["shift"] == -6 - (-4) - (-4)
    cap = simulate(ig, np.random.default_rng(0).integers(-128, 128, size=(5, 3, 4, 4)), capture=True)
    want = np.vectorize(lambda p: min(max(rhu(Fraction(int(p), 4)), -128), 127))(cap[x].astype(np.int64) * cap[gate])
    assert np.array_equal(cap[y], want)


@pytest.mark.parametrize("case, match", [
    (dict(gate_bits=9), "mul_node' \\(Mul\\): the gate 'hardsigmoid_out' has 9 bits; .* at most 8 bits"),
    (dict(gate_shape=(3, 1, 1)), "mul_node' \\(Mul\\): a product of activations of shapes \\(3, 1, 1\\) "
                                 "and \\(1, 3, 4, 4\\) cannot be lowered"),
    (dict(op="Div"), "div_node' \\(Div\\): a quotient of two activations"),
])
def test_unsupported_products_of_two_activations_are_refused_naming_the_node(case, match):
    with pytest.raises(ModelError, match=match):
        lower(squeeze_excite(**case)[0])


def test_unlowerable_op_is_refused_naming_the_node():
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 2, 3, 3))
    y = gb.op("Pad", [x], pads=(0, 0, 1, 1, 0, 0, 1, 1), value=0.0)
    g = annotate(gb.build(y), {x: (8, True, -3), y: (8, True, -3)})
    with pytest.raises(ModelError, match="pad_node.*Pad.*lowerable float ops"):
        lower(g)


def test_missing_annotation_is_refused():
    rng = np.random.default_rng(8)
    qw, wf = int_weight(rng, (2, 1, 1, 1), [-3, -3])
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 1, 2, 2))
    y = gb.op("Conv", [x, gb.const("w", wf)], **conv_attrs(1, pads=(0, 0, 0, 0)))
    g = annotate(gb.build(y), {x: (8, True, -3), y: (8, True, -3)})
    with pytest.raises(ModelError, match="conv_node.*WeightQuant"):
        lower(g)
    annotate(g, {}, {"w": (qw, [-3, -3])})
    del g.values[y].meta["quant"]
    with pytest.raises(ModelError, match="conv_node.*ActQuant"):
        lower(g)


# ------------------------------------------------------------------ costs, pass registry, real pipeline
def test_conv_cost_counts_naf_digits_per_output_position():
    q = np.array([1, 3, 0, -4], np.int8).reshape(1, 4, 1, 1)  # NAF digits: 1, 4-1, -, -4: four digits
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 4, 2, 2))
    y = gb.op("Conv", [x, gb.const("w", q.astype(np.float32) / 8)], **conv_attrs(1, pads=(0, 0, 0, 0)))
    g = annotate(gb.build(y), {x: (8, True, -2), y: (8, True, 0)}, {"w": (q, [-3])})
    ig = lower(g)
    node = ig.nodes[0]
    assert node.attrs["shift"] == (5,)
    cost = get_int_op("QConv").cost(node, ig)
    # per output position: 4 digit adds + bias + rounding; shifts: digit position 2 + requantization
    # dense: four 8-bit weights and one int32 bias; ideal: 4 digits at 4 output positions
    assert cost == {"adds": 4 * (4 + 1 + 1), "shifts": 4 * (1 + 1), "dense_weight_bytes": 4 + 4, "digits": 4,
                    "ideal_adds": 4 * 4}


def test_every_op_reports_a_cost_and_the_program_verifies():
    ig = lower(resnet_like(np.random.default_rng(12)))
    ig.verify()  # integer ops' shapes agree with the float graph's
    for node in ig.nodes:
        cost = get_int_op(node.op).cost(node, ig)
        assert set(cost) == {"adds", "shifts", "dense_weight_bytes", "digits", "ideal_adds"}
        assert all(isinstance(v, int) and v >= 0 for v in cost.values())
    total = {n.name: get_int_op(n.op).cost(n, ig)["dense_weight_bytes"] for n in ig.nodes}
    assert sum(total.values()) == sum(v.data.nbytes for v in ig.values.values() if v.is_const)  # 8-bit weights


def test_lower_is_a_registered_pass():
    from pqc.pipeline import get_pass

    info = get_pass("lower")
    g = resnet_like(np.random.default_rng(10))
    assert info.fn(g, None).nodes[0].op == "QConv"


def test_real_pipeline_matches_fake_quant_first_layer(small_cnn_onnx):
    """ONNX -> canonicalize -> baseline quantizer -> lower: the first layer equals the float conv
    of the dequantized input and weights, quantized, within half an output step."""
    import torch
    import torch.nn.functional as F

    from pqc.frontend import load_onnx
    from pqc.passes import canonicalize, quantize
    from pqc.quant import get_quant

    rng = np.random.default_rng(11)
    c = canonicalize(load_onnx(str(small_cnn_onnx)))
    q = quantize(c, rng.normal(size=(32, 1, 16, 16)).astype(np.float32), wbits=8)
    ig = lower(q)
    xq = quantize_input(ig, rng.normal(size=(8, 1, 16, 16)))
    cap = simulate(ig, xq, capture=True)
    first = ig.nodes[0]
    conv = next(n for n in q.nodes if n.name == first.name)
    wq = get_quant(q, conv.inputs[1])
    yf = F.conv2d(torch.from_numpy(dequantize(ig, ig.inputs[0], xq)), torch.from_numpy(wq.dequantize()).double(),
                  torch.from_numpy(q.const(conv.inputs[2])).double(), padding=1)
    yf = apply_act(yf.numpy(), conv.attrs.get("act"))
    e_y = ig.values[first.outputs[0]].meta["exp"]
    ref = np.clip(yf, first.attrs["lo"] * 2.0 ** e_y, first.attrs["hi"] * 2.0 ** e_y)
    e_b = max(ig.values[ig.inputs[0]].meta["exp"] + int(e) for e in wq.exps)
    assert np.abs(dequantize(ig, first.outputs[0], cap[first.outputs[0]]) - ref).max() <= 2.0 ** (e_y - 1) + 2.0 ** (e_b - 1)
    assert ig.values[ig.outputs[0]].dtype == "int32"


def test_an_unfolded_batchnorm_with_a_vanishing_gamma_lowers_within_int32(tmp_path):
    """A BatchNormalization after a Concat stays an affine; a channel whose gamma is ~1e-10 (as
    in pretrained DenseNets) would need a 40-bit requantizing shift at 15 significant bits. The
    shift is capped (`AFFINE_MAX_SHIFT`), so the model compiles and its C is bit-exact."""
    import shutil

    import torch
    from torch import nn

    from pqc.driver import compile_model
    from pqc.passes.lower import AFFINE_MAX_SHIFT

    class ConcatBN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.head(torch.relu(self.bn(torch.cat([x, self.conv(x)], 1))))

    torch.manual_seed(0)
    model = ConcatBN().eval()
    with torch.no_grad():
        model.bn.weight.copy_(torch.tensor([1.0, 1e-10, 0.7, 3e-9]))
        model.bn.running_var.fill_(0.8)
    path = tmp_path / "concat_bn.onnx"
    torch.onnx.export(model, (torch.randn(1, 1, 8, 8),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    x = np.random.default_rng(0).normal(0, 1, (16, 1, 8, 8)).astype(np.float32)
    build = compile_model(path, tmp_path / "out", calib=x, verify=shutil.which("gcc") is not None)
    affine = next(n for n in build.program.nodes if n.op == "QAffine")
    assert max(affine.attrs["shift"]) <= AFFINE_MAX_SHIFT
    m = build.program.values[affine.inputs[1]].data
    assert m[1] == 0 and m[3] == 0 and m[0] != 0  # the vanishing channels' terms are below an output step
