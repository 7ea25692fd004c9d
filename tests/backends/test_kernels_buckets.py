"""The `qconv_buckets` kernel: weight codes packed at 2, 4 or 8 bits, the walk visiting every
window tap once in weight order, and the C computing the simulator's integers on any shape,
stride, dilation, grouping and weight width (gcc, clang, sanitizers, RV32I multiplier-free)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder
from linear_chain import LAYER, linear_chain, random_qconv
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import verify
from pqc.backends.kernels import KERNELS
from pqc.backends.kernels.qconv_buckets import code_bits, weight_codes

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")


@given(st.sampled_from([2, 4, 8]), st.integers(1, 5), st.integers(1, 30), st.integers(0, 2**16))
def test_codes_hold_each_channels_weights_from_a_byte_boundary(bits, cout, taps, seed):
    lo, hi = -(1 << bits - 1), (1 << bits - 1) - 1
    w = np.random.default_rng(seed).integers(lo, hi + 1, (cout, taps))
    table, row_bytes = weight_codes(w, bits)
    assert row_bytes == -(-taps * bits // 8) and len(table.values) == cout * row_bytes
    raw = np.array(table.values, np.uint8).reshape(cout, row_bytes)
    fields = np.unpackbits(raw, axis=1, bitorder="little").reshape(cout, -1, bits)[:, :taps]
    codes = (fields * (1 << np.arange(bits))).sum(axis=2)
    assert (np.where(codes > hi, codes - (1 << bits), codes) == w).all()


def test_code_bits_is_the_narrowest_supported_width():
    assert [code_bits(np.array([lo, hi])) for lo, hi in ((-2, 1), (-3, 0), (-8, 7), (0, 8), (-128, 127))] == \
        [2, 4, 4, 8, 8]


def one_conv(cin: int, size: tuple[int, int], spec: dict) -> tuple:
    b = IntGraphBuilder("one")
    x = b.input("x", (1, cin, *size), dtype="uint8")
    y = random_qconv(b, x, np.random.default_rng(3), spec)
    return (None, None) if y is None else (b.build(y), b.graph.nodes[0])


@given(st.integers(1, 5), st.tuples(st.integers(3, 9), st.integers(3, 9)), LAYER)
def test_the_walk_visits_every_tap_once_in_weight_order(cin, size, spec):
    graph, node = one_conv(cin, size, spec)
    assume(graph is not None)
    ctx = KERNELS["qconv_buckets"].c_context(node, graph)
    offsets = []
    for it in range(ctx["iters"]):
        offsets += [it * ctx["step"] + row["row"] + col for row in ctx["unit"] for col in row["cols"]]
    offsets += [ctx["iters"] * ctx["step"] + row["row"] + col for row in ctx["rest"] for col in row["cols"]]
    dh, dw = node.attrs["dilations"]
    want = [ci * ctx["plane"] + ky * dh * ctx["wp"] + kx * dw
            for ci in range(ctx["cin_g"]) for ky in range(ctx["kh"]) for kx in range(ctx["kw"])]
    assert offsets == want
    taps_per_iter = sum(len(r["cols"]) for r in ctx["unit"])
    assert taps_per_iter * ctx["bits"] % 8 == 0 or ctx["iters"] == 1  # each iteration starts on a byte
    assert ctx["unit_bytes"] * 8 == taps_per_iter * ctx["bits"] or ctx["iters"] == 1


@needs_cc
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**16), st.integers(1, 5), st.tuples(st.integers(3, 11), st.integers(3, 13)),
       st.lists(LAYER, min_size=1, max_size=3))
@example(5, 3, (9, 11), [  # int8 input; odd taps per channel at 4 bits; 8-bit codes; a 2-bit depthwise with a tail
    {"cout_g": 2, "groups": "one", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 1, 1, 1),
     "bits": 4, "relu": True},
    {"cout_g": 3, "groups": "two", "kh": 3, "kw": 2, "stride": 2, "dilation": 2, "pads": (0, 2, 1, 0),
     "bits": 8, "relu": False},
    {"cout_g": 1, "groups": "depthwise", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 0, 2, 1),
     "bits": 2, "relu": True}])
def test_buckets_kernel_is_bit_exact_with_the_simulator(tmp_path, seed, cin, size, layers):
    rng = np.random.default_rng(seed)
    graph = linear_chain(rng, cin, size, layers, variant="buckets")
    assume(graph is not None)
    out = tmp_path / f"b{seed}"
    emit_c(graph, out)
    report = verify(graph, out, rng.integers(-128, 128, (3, cin, *size)).astype(np.int8))
    assert report.ok, report
    assert report.status("rv32i multiplier-free") == "passed"


def test_tables_are_half_a_byte_per_4_bit_weight():
    graph, node = one_conv(16, (14, 14), {"cout_g": 32, "groups": "one", "kh": 3, "kw": 3, "stride": 1,
                                          "dilation": 1, "pads": (1, 1, 1, 1), "bits": 4, "relu": True})
    ctx = KERNELS["qconv_buckets"].c_context(node, graph)
    assert (ctx["bits"], ctx["row_bytes"], len(ctx["codes"].values)) == (4, 72, 32 * 72)  # 144 weights per channel


def test_the_buckets_are_declared_for_the_ram_check():
    for bits, want in ((4, 256), (8, 512)):
        graph, node = one_conv(3, (5, 5), {"cout_g": 2, "groups": "one", "kh": 3, "kw": 3, "stride": 1,
                                           "dilation": 1, "pads": (1, 1, 1, 1), "bits": bits, "relu": True})
        assert KERNELS["qconv_buckets"].stack_bytes(node, graph) == want
