"""Random small float graphs through the whole compiler: canonicalize, quantize, lower, emit C,
build with gcc, and compare the C with the simulator bit for bit (property-based).

Each example draws a network of the supported shapes (convs with random groups, strides and
pads, residual adds, concat, max/average/global pools, dense, fused ReLU/ReLU6 and lookup-table
activations) with random weights, at random bit widths and weight formats.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir_builder import GraphBuilder, conv_attrs
from pqc.backends.harness import build, run_c
from pqc.backends.simulator import dequantize, quantize_input, simulate
from pqc.driver import compile_model
from pqc.executor import FloatExecutor
from pqc.passes.quantize import QuantizeOptions

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")


@st.composite
def networks(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    b = GraphBuilder("random", dynamic_batch=True)
    c, hw = draw(st.sampled_from([1, 3])), draw(st.sampled_from([6, 8, 9]))
    x = b.input("input", (1, c, hw, hw))

    def conv(x: str, cin: int, cout: int, group: int = 1, stride: int = 1, k: int = 3, act=None) -> str:
        pad = k // 2
        w = b.const("w", rng.normal(0, 0.5, (cout, cin // group, k, k)).astype(np.float32))
        bias = b.const("b", rng.normal(0, 0.1, cout).astype(np.float32))
        attrs = conv_attrs(k, stride, (pad, pad, pad, pad), group)
        y = b.op("Conv", [x, w, bias], **attrs)
        return b.op("Relu", [y]) if act == "relu" else b.op("Clip", [y], min=0.0, max=6.0) if act == "relu6" else y

    width = draw(st.sampled_from([4, 6, 8]))
    y = conv(x, c, width, act="relu")
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["residual", "depthwise", "grouped", "concat", "maxpool", "avgpool", "lut"]))
        if kind == "residual":
            z = conv(conv(y, width, width, act="relu6"), width, width)
            y = b.op("Relu", [b.op("Add", [y, z])])
        elif kind == "depthwise":
            y = conv(y, width, width, group=width, stride=draw(st.sampled_from([1, 2])), act="relu6")
        elif kind == "grouped":
            y = conv(y, width, width, group=2, k=draw(st.sampled_from([1, 3])), act="relu")
        elif kind == "concat":
            y = b.op("Concat", [y, conv(y, width, width, act="relu")], axis=1)
            y = conv(y, 2 * width, width, k=1, act="relu")
        elif kind == "maxpool" and b.graph.values[y].shape[-1] >= 4:
            y = b.op("MaxPool", [y], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
        elif kind == "avgpool" and b.graph.values[y].shape[-1] >= 3:
            y = b.op("AveragePool", [y], kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=0,
                     count_include_pad=draw(st.sampled_from([0, 1])))
        elif kind == "lut":
            op = draw(st.sampled_from(["Sigmoid", "HardSwish", "LeakyRelu"]))
            y = b.op(op, [y], **({"alpha": 0.1} if op == "LeakyRelu" else {}))
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y], axis=1)
    w = b.const("fc_w", rng.normal(0, 0.5, (5, b.graph.values[y].shape[1])).astype(np.float32))
    fc_b = b.const("fc_b", rng.normal(0, 0.1, 5).astype(np.float32))
    out = b.op("Gemm", [y, w, fc_b], alpha=1.0, beta=1.0, transA=0, transB=1)
    graph = b.build(out)
    calib = rng.normal(0, 1, (16, c, hw, hw)).astype(np.float32)
    return graph, calib


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(networks(), st.sampled_from([(8, 8, "int"), (4, 8, "int"), (4, 4, "int"), (3, 6, "pot")]))
def test_random_network_c_matches_simulator(tmp_path_factory, net, bits) -> None:
    graph, calib = net
    wbits, abits, fmt = bits
    out = tmp_path_factory.mktemp("e2e")
    b = compile_model(graph, out, calib=calib, verify=False,
                      quant=QuantizeOptions(wbits=wbits, abits=abits, weight_format=fmt))
    x = quantize_input(b.program, calib)
    expected = simulate(b.program, x)[b.program.outputs[0]]
    got = run_c(build(out, "gcc"), x).outputs
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_squeeze_excite_compiles_at_w8a8_close_to_the_float_model(se_model, tmp_path) -> None:
    """The product of a feature map and its gate (QMul) through the whole compiler, verified.

    Tolerance: 4 units of the output's last place. Each rounding before the output (conv, pool,
    two 1x1 convs, the gate's table, the product, the final pool) costs at most half a unit of
    its own format; measured the worst error is about one unit. A wrong product shift scales the
    output by 2 (an error near half the output range, 50 units and more), far beyond it."""
    calib = np.random.RandomState(0).rand(16, 1, 8, 8).astype(np.float32)
    b = compile_model(se_model, tmp_path / "build", calib=calib, verify=True)
    assert "QMul" in [n.op for n in b.program.nodes]
    x = np.random.RandomState(1).rand(64, 1, 8, 8).astype(np.float32)
    want = FloatExecutor(b.float_graph).run(x)[b.float_graph.outputs[0]]
    out = b.program.outputs[0]
    got = dequantize(b.program, out, simulate(b.program, quantize_input(b.program, x))[out])
    lsb = 2.0 ** b.program.values[out].meta["exp"]
    assert np.abs(got - want).max() <= 4 * lsb
    assert np.abs(want).max() > 50 * lsb
