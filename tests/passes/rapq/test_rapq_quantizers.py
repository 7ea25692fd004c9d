"""RAPQ's fake-quantizers: exact powers of two after hardening, integer activation exponents,
the integer program's rounding, and the learned floor/ceil choice of weight exponents."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pqc.intmath import rshift_round
from pqc.frontend import load_onnx
from pqc.passes.canonicalize import canonicalize
from pqc.passes.quantize import quantize
from pqc.passes.rapq.network import QuantNetwork
from pqc.passes.rapq.quantizers import ActQuantizer, WeightQuantizer
from pqc.passes.rapq.reconstruct import Schedule, reconstruct
from pqc.passes.rapq.units import find_units

from conftest import export_legacy


def _is_power_of_two(a: np.ndarray) -> bool:
    mantissa, _ = np.frexp(np.asarray(a, np.float64))
    return bool(np.all(mantissa == 0.5))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_hardened_weight_scales_are_exact_powers_of_two(bits):
    rng = np.random.default_rng(bits)
    w = (rng.standard_t(3, size=(6, 3, 3, 3)) * 0.1).astype(np.float32)
    w[5] = 0  # an all-zero channel (pruned) takes the layer's smallest scale
    q = WeightQuantizer(w, bits, pot=True)
    assert not _is_power_of_two(q.scale().detach().numpy())  # relaxed: in between
    with torch.no_grad():
        q.v.normal_()
        q.alpha.normal_()
    q.harden_exponent()
    q.harden_rounding()
    scales = q.scale().detach().numpy().astype(np.float64)
    exps = q.exponents()
    assert exps.dtype == np.int32 and _is_power_of_two(scales)
    np.testing.assert_array_equal(scales, np.exp2(exps.astype(np.float64)))
    ints = q.integers()
    assert np.abs(ints).max() <= (1 << (bits - 1)) - 1 and not ints[5].any()
    np.testing.assert_array_equal(q().detach().numpy(), ints * np.exp2(exps)[:, None, None, None])


def test_uniform_weight_quantizer_keeps_its_float_scale_and_has_no_exponents():
    w = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 12)
    q = WeightQuantizer(w, 4, pot=False)
    assert not _is_power_of_two(q.scale().detach().numpy())
    with pytest.raises(RuntimeError, match="PoT"):
        q.exponents()


def test_activation_exponent_is_an_integer_in_the_forward_pass_and_rounds_half_up():
    q = ActQuantizer(8, signed=True, log2_scale=-2.3, pot=True)
    assert q.exponent() == -2 and isinstance(q.exponent(), int)
    x = torch.tensor([-1.125, -0.375, 0.125, 0.375, 0.625, 100.0, -100.0])
    units = np.array([-4.5, -1.5, 0.5, 1.5, 2.5])  # ties at the step 2^-2 = 0.25
    expected = np.clip(rshift_round((units * 2).astype(np.int64), 1), -128, 127)  # the run-time requantizer
    got = q(x).detach().numpy() / 0.25
    np.testing.assert_array_equal(got[:5], expected)
    assert got[5] == 127 and got[6] == -128
    x.requires_grad_(True)
    q(x).sum().backward()
    assert q.t.grad is not None and q.t.grad != 0  # learnable through the straight-through round


def _floor_ceil_net(tmp_path):
    """input[16] -> identity (first layer, 8-bit, exact) -> 2 channels (4-bit) -> identity (last).

    Channel 0 has a weight 1.2 on input 0 (std 10) and weights up to 0.45 elsewhere: floor of the
    Lp scale's log2 clips that weight to 0.875, which dominates the output error (30x ceil's),
    so ceil must win although frac(log2 s0) = 0.43 (nearest rounding says floor). Channel 1's
    outlier 1.3 sits on input 1, which is always 0: clipping it costs nothing and floor's finer
    step quarters the output error, so floor must win although frac(log2 s0) = 0.57 (nearest
    says ceil)."""
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 2), torch.nn.Linear(2, 2))
    w = np.zeros((2, 16), np.float32)
    w[0, 0], w[0, 2:] = 1.2, np.linspace(-0.45, 0.45, 14)
    w[1, 1], w[1, 2:] = 1.3, np.linspace(-0.45, 0.45, 14)
    with torch.no_grad():
        for layer, weight in zip(model, (np.eye(16), w, np.eye(2))):
            layer.weight.copy_(torch.from_numpy(np.asarray(weight, np.float32)))
            layer.bias.zero_()
    graph = canonicalize(load_onnx(export_legacy(model, tmp_path / "fc.onnx", shape=(1, 16))))
    x = np.random.default_rng(0).normal(size=(256, 16)).astype(np.float32)
    x[:, 0] *= 10
    x[:, 1] = 0
    return graph, x


def test_floor_or_ceil_follows_the_clipping_trade_off_of_the_block_output(tmp_path):
    graph, x = _floor_ceil_net(tmp_path)
    base = quantize(graph, x, method="lp", wbits=4, abits=8)
    net = QuantNetwork(base)
    layer = [n for n in base.nodes if n.op == "Gemm"][1]
    wq = net.weight(layer)
    np.testing.assert_allclose(wq.h_v().detach().numpy(), [0.43, 0.57], atol=0.01)  # nearest: floor, ceil
    units = find_units(base)
    reconstruct(net, units, [2.0] * len(units), x, Schedule(iters=400, act_iters=1), seed=0)
    assert wq.floor_chosen().tolist() == [False, True]
