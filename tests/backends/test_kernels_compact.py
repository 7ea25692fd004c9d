"""The compact kernels (weights packed at their bit width) and the ``--optimize`` choice.

The compact QConv/QGemm must compute the simulator's integers on any shape and weight width
(proved by the harness: gcc, clang, sanitizers, RV32I multiplier-free), store about ``bits/8``
bytes per weight, and ``--optimize size`` must then pick them (or `qconv_buckets`, tables as small
and faster) over the digit tables.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from linear_chain import LAYER, linear_chain
from pqc.backends.c_emitter import emit_c
from pqc.backends.harness import verify
from pqc.backends.cost_model import estimate
from pqc.backends.kernel_select import kernel_table_bytes, op_kernels, select_kernels, weight_bytes
from pqc.backends.kernels import KERNELS, kernel_for
from pqc.driver import compile_model, load_build
from pqc.errors import PqcError

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make sysdeps)")


def _network(seed: int, cin: int, size: tuple[int, int], layers: list[dict], gemm_bits: int):
    """A chain of QConvs (then a QGemm) on compact kernels; None when a layer's window does not fit."""
    return linear_chain(np.random.default_rng(seed), cin, size, layers, gemm_bits, variant="compact")


@needs_cc
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**16), st.integers(1, 4), st.tuples(st.integers(3, 9), st.integers(3, 9)),
       st.lists(LAYER, min_size=2, max_size=4), st.integers(2, 8))
def test_compact_kernels_are_bit_exact_with_the_simulator(tmp_path, seed, cin, size, layers, gemm_bits):
    graph = _network(seed, cin, size, layers, gemm_bits)
    assume(graph is not None)
    out = tmp_path / f"c{seed}"
    emit_c(graph, out)
    x = np.random.default_rng(seed).integers(-128, 128, (4, *graph.values[graph.inputs[0]].shape[1:])).astype(np.int8)
    report = verify(graph, out, x)
    assert report.ok, report
    assert report.status("rv32i multiplier-free") == "passed"


def test_compact_tables_hold_bits_over_8_bytes_per_weight():
    for bits in range(2, 9):
        graph = _network(bits, 3, (7, 7), [{"cout_g": 5, "groups": "one", "kh": 3, "kw": 3, "stride": 1,
                                           "dilation": 1, "pads": (1, 1, 1, 1), "bits": bits, "relu": True}], bits)
        for node in graph.nodes:
            if node.op not in ("QConv", "QGemm"):
                continue
            w = graph.values[node.inputs[1]]
            ctx = kernel_for(node).c_context(node, graph)
            cout = w.shape[0]
            assert ctx["weights"].nbytes <= w.size * bits / 8 + cout  # under a byte of row alignment each
            assert kernel_table_bytes(kernel_for(node), node, graph) <= w.size * bits / 8 + 6 * cout  # + bias, shift


def test_choice_follows_the_goal_and_keeps_the_program():
    graph = _network(3, 3, (7, 7), [{"cout_g": 4, "groups": "one", "kh": 3, "kw": 3, "stride": 1, "dilation": 1,
                                     "pads": (1, 1, 1, 1), "bits": 4, "relu": False}], 4)
    for node in graph.nodes:
        node.meta.pop("kernel", None)
    conv = graph.nodes[0]
    sizes = {k: kernel_table_bytes(KERNELS[k], conv, graph) for k in ("qconv_tables", "qconv_compact")}
    assert sizes["qconv_compact"] < sizes["qconv_tables"]
    costs = {k.name: estimate(k, conv, graph) for k in op_kernels("QConv") if k.supports(conv, graph)}
    chosen = select_kernels(graph, "size")
    assert "kernel" not in conv.meta  # the input program is untouched
    # size: the least table bytes (compact and buckets tie at 4 bits), then the fewest instructions
    stored = {k: weight_bytes(KERNELS[k], c) for k, c in costs.items()}  # unrolled: its code holds the weights
    tied = {k for k, b in stored.items() if b == min(stored.values())}
    assert tied == {"qconv_compact", "qconv_buckets"}
    assert chosen.nodes[0].meta["kernel"] == min(tied, key=lambda k: costs[k].instructions["cortex-m0"]) == \
        "qconv_buckets"
    assert [n.meta.get("kernel") for n in chosen.nodes][1:] == [None, "qgemm_compact"]
    assert chosen.nodes[0].meta["cost"]["flash_bytes"] == costs["qconv_buckets"].flash_bytes
    assert all(np.array_equal(chosen.values[k].data, v.data) for k, v in graph.values.items() if v.is_const)
    # speed without a budget: never more flash than the default kernels', the fast walk wins here
    fast = select_kernels(graph, "speed")
    assert sum(n.meta["cost"]["flash_bytes"] for n in fast.nodes if "cost" in n.meta) <= sum(
        estimate(op_kernels(n.op)[0], n, graph).flash_bytes for n in graph.nodes if n.op in ("QConv", "QGemm"))
    assert fast.nodes[0].meta["kernel"] == "qconv_fast"
    with pytest.raises(PqcError, match="choose one of size, balanced, speed"):
        select_kernels(graph, "fast")


@needs_cc
def test_optimize_size_gives_fewer_weight_bytes_and_the_folder_keeps_the_choice(small_cnn_onnx, tmp_path):
    x = np.random.default_rng(0).normal(0, 1, (16, 1, 16, 16)).astype(np.float32)
    from pqc.passes.quantize import QuantizeOptions

    reports = {}
    for goal in ("size", "speed"):
        build = compile_model(small_cnn_onnx, tmp_path / goal, calib=x, quant=QuantizeOptions(wbits=4, abits=4),
                              optimize=goal, verify=goal == "size")
        reports[goal] = build.report
    assert reports["size"]["totals"]["weight_bytes"] < reports["speed"]["totals"]["weight_bytes"]
    assert reports["size"]["verification"]["checks"]
    kernels = {l["kernel"] for l in reports["size"]["layers"] if l["op"] in ("QConv", "QGemm")}
    assert kernels <= {"qconv_compact", "qconv_buckets", "qgemm_compact"} and "qconv_buckets" in kernels
    again = load_build(tmp_path / "size").program
    assert {n.meta.get("kernel") for n in again.nodes if n.op in ("QConv", "QGemm")} == kernels
