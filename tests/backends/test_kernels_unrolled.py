"""The unrolled kernels (weight digits as straight-line code): same integers, no weight tables.

`qconv_unrolled`/`qgemm_unrolled` must compute the simulator's integers on any shape and bit
width (proved by the harness: gcc, clang, sanitizers, RV32I multiplier-free, Cortex-M0) and
store no weight table, only the bias and shift tables.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from linear_chain import LAYER, linear_chain
from pqc.backends.c_emitter import emit_c
from pqc.backends.c_tables import band_features, table_bytes
from pqc.backends.harness import verify
from pqc.backends.kernels import kernel_for
from pqc.intmath import naf_count

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")


def _network(seed: int, cin: int, size: tuple[int, int], layers: list[dict], gemm_bits: int):
    """A chain of QConvs then a QGemm on the unrolled kernels; None when a layer's window does not fit."""
    return linear_chain(np.random.default_rng(seed), cin, size, layers, gemm_bits, variant="unrolled")


@needs_cc
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**16), st.integers(1, 4), st.tuples(st.integers(3, 9), st.integers(3, 9)),
       st.lists(LAYER, min_size=2, max_size=4), st.integers(2, 8))
def test_unrolled_kernels_are_bit_exact_with_the_simulator(tmp_path, seed, cin, size, layers, gemm_bits):
    graph = _network(seed, cin, size, layers, gemm_bits)
    assume(graph is not None)
    out = tmp_path / f"u{seed}"
    emit_c(graph, out)
    x = np.random.default_rng(seed).integers(-128, 128, (4, *graph.values[graph.inputs[0]].shape[1:])).astype(np.int8)
    report = verify(graph, out, x)
    assert report.ok, report
    assert report.status("rv32i multiplier-free") == "passed"


def test_unrolled_kernels_hold_no_weight_table_and_count_their_digits():
    spec = {"cout_g": 2, "groups": "two", "kh": 3, "kw": 2, "stride": 2, "dilation": 2, "pads": (0, 1, 2, 0),
            "bits": 5, "relu": True}
    graph = _network(7, 4, (9, 8), [spec, {**spec, "groups": "depthwise", "kh": 1, "kw": 1}], 3)
    for node in graph.nodes:
        if node.op not in ("QConv", "QGemm"):
            continue
        kernel = kernel_for(node)
        ctx = kernel.c_context(node, graph)
        outputs = len(node.attrs["shift"])
        assert table_bytes(ctx) == ctx["bias"].nbytes + ctx["shift"].nbytes  # bias and shifts: nothing else
        assert ctx["shift"].nbytes == (-(-outputs // 2) if ctx["shift_base"] is not None else outputs)
        f = kernel.cost_features(node, graph, ctx)
        digits = int(naf_count(graph.values[node.inputs[1]].data).sum())
        y = graph.values[node.outputs[0]].shape
        repeats = y[2] * y[3] if node.op == "QConv" else y[0]
        counts = {"digit_visits": digits * repeats, "outputs": outputs * repeats, "code_digits": digits,
                  "code_rows": outputs}
        if node.op == "QConv":  # its band: gathered rows, and one channel code entry per output row
            counts.update(band_elements=band_features(ctx, outputs)["band_elements"], channel_rows=outputs * y[2],
                          packed_loads=0.0, packed_stores=0.0,  # this chain's activations are bytes
                          signed_macs=band_features(ctx, outputs)["signed_macs"])
        assert f == counts
        code = "".join(part["code"] for parts in ctx["slices"] for part in parts)
        assert code.count("[") == digits  # one load per digit


@needs_cc
def test_layers_cut_into_functions_of_whole_channels_stay_bit_exact(tmp_path, monkeypatch):
    """Above `SLICE_LINES` lines a layer's straight-line code is cut into functions (the
    compilers' time grows faster than linearly in a function's size); at 40 lines every layer
    here is cut into several, and the C still computes the simulator's integers everywhere."""
    import pqc.backends.kernels.qconv_unrolled as unrolled

    monkeypatch.setattr(unrolled.code_slices, "__defaults__", (40,))
    spec = {"cout_g": 6, "groups": "one", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "pads": (1, 1, 1, 1),
            "bits": 6, "relu": True}
    graph = _network(3, 3, (7, 6), [spec, {**spec, "stride": 2, "pads": (0, 1, 2, 0)}], 6)
    out = tmp_path / "cut"
    emit_c(graph, out)
    source = (out / "model.c").read_text()
    for node in graph.nodes:
        if node.op in ("QConv", "QGemm"):
            assert len(kernel_for(node).c_context(node, graph)["slices"]) > 1
    assert source.count("_part1(") >= 6  # each of the three layers: its second part defined and called
    x = np.random.default_rng(3).integers(-128, 128, (4, *graph.values[graph.inputs[0]].shape[1:])).astype(np.int8)
    report = verify(graph, out, x)
    assert report.ok, report
