"""The integer simulator: batch invariance, chunking, input quantization, the layer debugger."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from int_helpers import annotate, conv_int, int_weight, resnet_like
from ir_builder import GraphBuilder, conv_attrs

from pqc.backends import simulator
from pqc.intmath import rshift_round
from pqc.backends.simulator import dequantize, first_mismatch, quantize_input, simulate
from pqc.errors import DataError
from pqc.passes.lower import lower


@pytest.fixture(scope="module")
def net():
    return lower(resnet_like(np.random.default_rng(0)))


def test_batch_of_n_equals_n_runs_of_one(net):
    x = np.random.default_rng(1).integers(-128, 128, size=(7, 1, 12, 12))
    batched = simulate(net, x, capture=True)
    singles = [simulate(net, x[i:i + 1], capture=True) for i in range(7)]
    for name, arr in batched.items():
        assert arr.dtype == net.values[name].dtype
        assert np.array_equal(arr, np.concatenate([s[name] for s in singles])), name


def test_chunking_does_not_change_results(net, monkeypatch):
    x = np.random.default_rng(2).integers(-128, 128, size=(10, 1, 12, 12))
    whole = simulate(net, x)
    monkeypatch.setattr(simulator, "CHUNK", 3)
    assert np.array_equal(simulate(net, x)[net.outputs[0]], whole[net.outputs[0]])


def test_capture_holds_every_activation(net):
    cap = simulate(net, np.zeros((2, 1, 12, 12), np.int8), capture=True)
    assert set(cap) == set(net.activations())
    out = simulate(net, np.zeros((2, 1, 12, 12), np.int8))
    assert set(out) == set(net.outputs)


def test_wide_convolution_takes_the_exact_float64_path():
    # max|x| * sum|w| = 127 * 64*9*127 > 2^24: float32 would round, the simulator must not
    rng = np.random.default_rng(3)
    qw, wf = int_weight(rng, (2, 64, 3, 3), [-9, -9])
    qw[0] = 127
    gb = GraphBuilder(dynamic_batch=True)
    x = gb.input("x", (1, 64, 3, 3))
    y = gb.op("Conv", [x, gb.const("w", wf)], **conv_attrs(3, pads=(0, 0, 0, 0)))
    g = annotate(gb.build(y), {x: (8, True, 0), y: (32, True, -9)}, {"w": (qw, [-9, -9])})
    ig = lower(g)
    xq = rng.integers(-128, 128, size=(3, 64, 3, 3))
    xq[0] = 127
    assert np.array_equal(simulate(ig, xq)[y], conv_int(xq, qw, (0, 0, 0, 0), (1, 1), (1, 1), 1))


def test_quantize_input_rounds_half_away_and_clamps(net):
    e = net.values["x"].meta["exp"]
    x = np.array([0.5, -0.5, 1.5, -2.5, 0.49, 1000.0, -1000.0]) * 2.0 ** e
    q = quantize_input(net, np.broadcast_to(x[:, None, None, None], (7, 1, 12, 12)))
    assert q.dtype == np.int8
    assert q[:, 0, 0, 0].tolist() == [1, -1, 2, -3, 0, 127, -128]
    assert np.array_equal(dequantize(net, "x", q), q * 2.0 ** e)


def test_wrong_inputs_are_refused(net):
    with pytest.raises(DataError, match="shape"):
        simulate(net, np.zeros((2, 1, 11, 12), np.int8))
    with pytest.raises(DataError, match="integers"):
        simulate(net, np.zeros((2, 1, 12, 12), np.float32))
    with pytest.raises(DataError, match="outside"):
        simulate(net, np.full((2, 1, 12, 12), 300))


def test_first_mismatch_finds_the_earliest_differing_layer(net):
    x = np.random.default_rng(4).integers(-128, 128, size=(2, 1, 12, 12))
    a = simulate(net, x, capture=True)
    assert first_mismatch(net, a, dict(a)) is None
    b = {k: v.copy() for k, v in a.items()}
    late, early = net.nodes[-3], net.nodes[2]
    b[late.outputs[0]].reshape(-1)[0] += 1
    b[early.outputs[0]][1, 0, 2, 3] += 1  # the C dumps flat buffers: give b's flat, a's shaped
    b = {k: v.reshape(-1) for k, v in b.items()}
    m = first_mismatch(net, a, b)
    assert m is not None and (m.node, m.index) == (early.name, (1, 0, 2, 3))
    assert m.b == m.a + 1
    del b[early.outputs[0]]  # a layer missing from one dump is skipped
    assert first_mismatch(net, a, b).node == late.name
    with pytest.raises(DataError):
        first_mismatch(net, a, {"x": a["x"][:1]})


def test_requantization_path_matches_big_int_rounding(net):
    # the simulated first conv equals rshift_round of the independently computed accumulator
    x = np.random.default_rng(5).integers(-128, 128, size=(2, 1, 12, 12))
    cap = simulate(net, x, capture=True)
    node = net.nodes[0]
    w, b = (net.values[i].data for i in node.inputs[1:])
    acc = conv_int(x, w, node.attrs["pads"], node.attrs["strides"], node.attrs["dilations"], 1)
    acc = acc + b.astype(np.int64).reshape(1, -1, 1, 1)
    want = [min(max(rshift_round(int(v), node.attrs["shift"][c]), node.attrs["lo"]), node.attrs["hi"])
            for (_, c, _, _), v in np.ndenumerate(acc)]
    assert cap[node.outputs[0]].reshape(-1).tolist() == want


@pytest.mark.slow
def test_ten_thousand_images_through_a_resnet8_quickly():
    ig = lower(resnet_like(np.random.default_rng(6), (1, 28, 28), (16, 32, 64), 10))
    x = np.random.default_rng(7).integers(-128, 128, size=(10_000, 1, 28, 28), dtype=np.int8)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    out = simulate(ig, x)
    assert out[ig.outputs[0]].shape == (10_000, 10)
    assert time.perf_counter() - start < 45 * max(1, 2 / threads)


def test_exact_dtype_switches_to_float64_at_2_to_24():
    from pqc.intops.linear import exact_dtype

    x = np.full((2, 1033), -128, np.int8)  # int8 -128: its magnitude must not wrap to -128
    assert exact_dtype(x, np.full((1, 1024), 127, np.int8)) == torch.float32  # 128*127*1024 < 2^24
    assert exact_dtype(x, np.full((1, 1033), 127, np.int8)) == torch.float64  # 128*127*1033 > 2^24
