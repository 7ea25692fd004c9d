"""The `qconv_1x1_lanes` kernel: which layers it takes, the lane bound that cuts the input
channels into chunks, and the C computing the simulator's integers (gcc, clang, sanitizers,
RV32I multiplier-free) on random pointwise layers, and at the inputs' extremes where a chunk
that ignored the bound would overflow its 16-bit lanes."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import pqc.backends.kernels.qconv_1x1_lanes as lanes
from int_graph_builder import IntGraphBuilder
from linear_chain import const_weights, linear_chain
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import verify
from pqc.backends.kernel_select import usable_kernels
from pqc.backends.kernels import KERNELS, kernel_for
from pqc.errors import ModelError, VerificationError

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")
KERNEL = KERNELS["qconv_1x1_lanes"]

#: one pointwise QConv (the chain's LAYER restricted to what the kernel takes)
POINTWISE = st.fixed_dictionaries({
    "cout_g": st.integers(1, 40), "groups": st.just("one"), "kh": st.just(1), "kw": st.just(1),
    "stride": st.sampled_from([1, 2]), "dilation": st.just(1), "pads": st.tuples(*[st.integers(0, 1)] * 4),
    "bits": st.integers(2, 4), "relu": st.booleans(),
})


def pointwise(cin: int, cout: int, w: np.ndarray, x_dtype: str = "uint8", size: tuple[int, int] = (3, 5)):
    """One 1x1 QConv of weights ``w`` on a ``1 x cin x size`` input of ``x_dtype``, its shift
    small enough that an error of 2^16 in a sum moves the output."""
    b = IntGraphBuilder("pw")
    x = b.input("x", (1, cin, *size), dtype=x_dtype)
    bias = b.const("b", np.arange(cout, dtype=np.int32) - cout // 2)
    y = b.op("QConv", [x, const_weights(b, w, 4), bias], kernel_shape=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0),
             dilations=(1, 1), group=1, shift=(10,) * cout, lo=-128, hi=127)
    return b.build(y)


def test_it_takes_pointwise_layers_of_at_most_4_bit_weights_only():
    w4 = np.ones((3, 8, 1, 1), np.int8)
    graph = pointwise(8, 3, w4)
    assert KERNEL.supports(graph.nodes[0], graph)
    assert KERNEL in usable_kernels(graph.nodes[0], graph)[0]
    wide = pointwise(8, 3, np.full((3, 8, 1, 1), 9, np.int8))  # 5-bit weights
    assert not KERNEL.supports(wide.nodes[0], wide) and KERNEL not in usable_kernels(wide.nodes[0], wide)[0]
    rng = np.random.default_rng(0)
    window = linear_chain(rng, 4, (5, 5), [{"cout_g": 2, "groups": "one", "kh": 3, "kw": 1, "stride": 1,
                                            "dilation": 1, "pads": (0, 0, 0, 0), "bits": 4, "relu": True}])
    assert not KERNEL.supports(window.nodes[0], window)
    window.nodes[0].meta["kernel"] = KERNEL.name
    with pytest.raises(ModelError, match="does not support"):
        kernel_for(window.nodes[0], window)


def test_chunks_grow_while_every_lane_sum_is_proven_within_int16():
    w = np.full((2, 40), -8)
    # uint8 inputs: a product reaches -2040, so 16 channels (-32,640) fit a lane and 17 do not
    assert lanes.lane_chunks(w, 0, 255, most=32, per_byte=2) == [16, 16, 8]
    # 4-bit inputs: all 40 channels fit; the table size bounds the chunk
    assert lanes.lane_chunks(w, 0, 15, most=32, per_byte=2) == [32, 8]
    # a lighter output channel does not lift the bound its heavier neighbour sets
    w[1] = 1
    assert lanes.lane_chunks(w, 0, 255, most=64, per_byte=2) == [16, 16, 8]
    assert lanes.lane_chunks(np.full((1, 7), 3), -128, 127, most=4, per_byte=4) == [4, 3]


@needs_cc
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**16), st.integers(1, 40), st.tuples(st.integers(1, 6), st.integers(1, 9)),
       st.lists(POINTWISE, min_size=1, max_size=3))
@example(7, 19, (5, 7), [  # odd widths (a lone last column), stride 2 with asymmetric pads, 2-, 3- and 4-bit codes
    {"cout_g": 5, "groups": "one", "kh": 1, "kw": 1, "stride": 1, "dilation": 1, "pads": (0, 0, 0, 0), "bits": 4,
     "relu": True},
    {"cout_g": 3, "groups": "one", "kh": 1, "kw": 1, "stride": 2, "dilation": 1, "pads": (1, 0, 0, 1), "bits": 2,
     "relu": False},
    {"cout_g": 7, "groups": "one", "kh": 1, "kw": 1, "stride": 1, "dilation": 1, "pads": (0, 0, 0, 0), "bits": 3,
     "relu": True}])
def test_lanes_kernel_is_bit_exact_with_the_simulator(tmp_path, seed, cin, size, layers):
    rng = np.random.default_rng(seed)
    graph = linear_chain(rng, cin, size, layers, variant="1x1_lanes")
    assume(graph is not None)
    out = tmp_path / f"l{seed}"
    emit_c(graph, out)
    report = verify(graph, out, rng.integers(-128, 128, (3, cin, *size)).astype(np.int8))
    assert report.ok, report
    assert report.status("rv32i multiplier-free") == "passed"


def extreme_layer(cin: int = 40, cout: int = 3):
    """A pointwise layer whose every lane sum is as large as 4-bit weights and uint8 inputs allow."""
    w = np.full((cout, cin, 1, 1), -8, np.int8)
    w[1] = 7
    return pointwise(cin, cout, w)


@needs_cc
def test_lane_overflow_is_caught_by_flushing(tmp_path, monkeypatch):
    """At the uint8 inputs' top (255) a chunk of more than 16 channels of -8 overflows a lane: the
    bound cuts the chunks at 16 and the C is exact; the same layer with the bound ignored (one
    chunk of all 40 channels) is not, so this input does exercise the overflow."""
    graph = extreme_layer()
    monkeypatch.setattr(lanes, "TABLE_BYTES", 64 * 64)  # tables for 64 channels: only the lane bound cuts
    chunks = [c["size"] for c in KERNEL.c_context(graph.nodes[0], graph)["chunks"]]
    assert chunks == [16, 16, 8]
    graph.nodes[0].meta["kernel"] = KERNEL.name
    top = np.full((2, 40, 3, 5), 255, np.uint8)
    top[1, :, :, 1::2] = 0  # the second sample: one column of each pair at the top, the other at zero
    emit_c(graph, tmp_path / "bounded")
    assert verify(graph, tmp_path / "bounded", top).ok

    monkeypatch.setattr(lanes, "lane_chunks", lambda w, lo, hi, most, per_byte: [w.shape[1]])
    emit_c(graph, tmp_path / "unbounded")
    with pytest.raises(VerificationError, match="differs from the simulator"):
        verify(graph, tmp_path / "unbounded", top)


def test_stack_arrays_are_declared_for_the_ram_check():
    graph = extreme_layer(cout=5)
    assert KERNEL.stack_bytes(graph.nodes[0], graph) == lanes.TABLE_BYTES + 2 * 4 * 5
