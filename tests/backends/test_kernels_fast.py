"""The band geometry of the QConv kernels and the `qconv_fast` kernel (4 output columns per walk).

qconv_fast must compute the simulator's integers on any shape and weight width, its tail
columns included (proved by the harness: gcc, clang, sanitizers, RV32I multiplier-free); the
band must hold ``C * band_rows * wp`` elements instead of a padded copy of the whole input, and
the bridged digit tables must keep their deltas in 8 bits with the same sums.
"""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder
from linear_chain import LAYER, linear_chain, random_qconv
from pqc.backends.c_emitter import emit_c
from pqc.backends.c_tables import ITEMSIZE, _bridged, digit_tables
from pqc.backends.harness import verify
from pqc.backends.kernels import KERNELS

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")

@needs_cc
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**16), st.integers(1, 4), st.tuples(st.integers(3, 11), st.integers(3, 13)),
       st.lists(LAYER, min_size=1, max_size=3))
@example(7, 4, (9, 11), [  # int8 input, depthwise with a 2-column tail, then grouped, strided and dilated
    {"cout_g": 1, "groups": "depthwise", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 0, 2, 1),
     "bits": 3, "relu": False},
    {"cout_g": 3, "groups": "two", "kh": 2, "kw": 3, "stride": 2, "dilation": 2, "pads": (0, 2, 1, 0),
     "bits": 8, "relu": True}])
def test_fast_kernel_is_bit_exact_with_the_simulator(tmp_path, seed, cin, size, layers):
    rng = np.random.default_rng(seed)
    graph = linear_chain(rng, cin, size, layers, variant="fast")
    assume(graph is not None)
    out = tmp_path / f"f{seed}"
    emit_c(graph, out)
    report = verify(graph, out, rng.integers(-128, 128, (3, cin, *size)).astype(np.int8))
    assert report.ok, report
    assert report.status("rv32i multiplier-free") == "passed"


def _one_conv(pads: tuple[int, int, int, int], c: int = 16, size: int = 28, stride: int = 1):
    rng = np.random.default_rng(1)
    b = IntGraphBuilder("band")
    x = b.input("x", (1, c, size, size), dtype="uint8")
    spec = {"cout_g": 8, "groups": "one", "kh": 3, "kw": 3, "stride": stride, "dilation": 1, "pads": pads,
            "bits": 4, "relu": True}
    graph = b.build(random_qconv(b, x, rng, spec))
    return graph, graph.nodes[0]


@pytest.mark.parametrize("kernel", ["qconv_tables", "qconv_compact", "qconv_fast"])
def test_band_holds_the_rows_one_output_row_reads(kernel):
    graph, node = _one_conv((1, 2, 0, 1), stride=2)  # top, left, bottom, right
    ctx = KERNELS[kernel].c_context(node, graph)
    assert (ctx["band_rows"], ctx["wp"]) == (3, 28 + 2 + 1)
    assert ctx["scratch_bytes"] == 16 * 3 * 31 * ITEMSIZE["uint8_t"]  # not 16 * 29 * 31
    assert ctx["group_stride"] == 16 * 3 * 31 if "group_stride" in ctx else True
    if kernel != "qconv_compact":  # channel planes 93 apart: the bridged deltas stay 8-bit
        assert ctx["deltas"].ctype == "uint8_t"


def test_unpadded_input_is_read_in_place_except_by_the_fast_kernel():
    graph, node = _one_conv((0, 0, 0, 0))
    assert KERNELS["qconv_tables"].c_context(node, graph)["scratch_bytes"] == 0
    assert KERNELS["qconv_fast"].c_context(node, graph)["scratch_bytes"] == 16 * 3 * 28


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=6), st.lists(st.integers(0, 3000), max_size=6))
def test_bridged_lists_keep_the_sum_and_every_step_under_the_limit(pos, neg):
    bpos, bneg = _bridged(sorted(pos), sorted(neg), 255)
    assert Counter(bpos) - Counter(pos) == Counter(bneg) - Counter(neg)  # each bridge added and subtracted
    assert Counter(pos) - Counter(bpos) == Counter() and Counter(neg) - Counter(bneg) == Counter()
    for sel in (bpos, bneg):
        assert sel == sorted(sel) and all(b - a <= 255 for a, b in zip([0, *sel], sel))


def test_bridging_is_taken_only_when_it_is_smaller():
    near = digit_tables(np.array([[1, 0, 0, 1]]), np.array([0, 100, 200, 1000]))
    assert near["deltas"].ctype == "uint16_t"  # one far tap: 2 x 16 bits beat 5 + 3 bridged bytes
    w = np.ones((1, 40), dtype=np.int64)
    far = digit_tables(w, np.arange(40) * 100 + 300)
    assert far["deltas"].ctype == "uint8_t" and len(far["deltas"].values) == 40 + 2  # one bridge, both lists


def _features(kernel: str, node, graph) -> dict[str, float]:
    k = KERNELS[kernel]
    return k.cost_features(node, graph, k.c_context(node, graph))


def test_cost_features_count_the_walks():
    graph, node = _one_conv((1, 1, 1, 1), size=10)  # ow = 10: two 4-column walks and a 2-column tail
    tables = _features("qconv_tables", node, graph)
    fast = _features("qconv_fast", node, graph)
    deltas = len(KERNELS["qconv_tables"].c_context(node, graph)["deltas"].values)
    assert tables["delta_visits"] == fast["tap_loads"] == 10 * 10 * deltas
    assert fast["delta_visits"] == 10 * 3 * deltas and fast["walks"] == 8 * 10 * 3
    assert tables["outputs"] == fast["outputs"] == 8 * 10 * 10
    assert fast["band_elements"] == 10 * 16 * 3 * 10
    compact = _features("qconv_compact", node, graph)
    assert compact["weight_visits"] == 8 * 10 * 10 * 16 * 9 and compact["magnitude_bits"] > 0
