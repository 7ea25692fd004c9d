"""Packed sub-byte activations (issue 11, item 2): the field layout round-trips, only values every
touching kernel can read are packed, the arena shrinks, and the C over packed fields computes the
simulator's integers on a poisoned arena for every conv variant, odd plane sizes and A2 and A4."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder, avg_attrs, conv, random_int_inputs, random_weights
from pqc.backends.activation_layout import (PACKED_BITS, field_width, pack_activations, packed_bits, packed_nbytes,
                                            signed_fields, unpack)
from pqc.backends.c_emitter import emit_c, planned_memory
from pqc.backends.harness import build, run_c
from pqc.backends.simulator import simulate
from pqc.cli import main
from pqc.intmath import reciprocal
from pqc.ir import Graph

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="gcc/make missing")
CONV_KERNELS = ("qconv_tables", "qconv_fast", "qconv_compact", "qconv_unrolled")


def reference_pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Fields of ``bits`` bits, element i at byte i*bits//8, low bits first: the layout by its definition."""
    per = 8 // bits
    out = np.zeros(packed_nbytes(values.size, bits), np.uint8)
    for i, v in enumerate(values.astype(np.int64)):
        out[i // per] |= (int(v) & ((1 << bits) - 1)) << (i % per * bits)
    return out


@given(st.sampled_from([2, 4]), st.booleans(), st.integers(1, 40), st.integers(0, 2**16))
def test_unpack_inverts_the_field_layout(bits, signed, size, seed):
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
    values = np.random.default_rng(seed).integers(lo, hi + 1, size)
    raw = np.stack([reference_pack(values, bits)] * 2)  # two samples
    got = unpack(raw, "int8" if signed else "uint8", size, bits, signed)
    assert got.shape == (2, size) and (got == values).all()


def _value(b: IntGraphBuilder, name: str, bits: int, signed: bool):
    v = b.graph.values[name]
    v.meta.update(bits=bits, signed=signed)
    return v


def test_field_width_is_the_narrowest_that_holds_the_range():
    b = IntGraphBuilder("w")
    x = b.input("x", (1, 1, 2, 2))
    assert [field_width(_value(b, x, bits, True)) for bits in (2, 3, 4, 5, 8)] == [2, 4, 4, 0, 0]
    assert field_width(_value(b, x, 4, False)) == 4 and field_width(_value(b, x, 2, False)) == 2  # int8 of 0..15
    assert not signed_fields(b.graph.values[x]) and signed_fields(_value(b, x, 4, True))


def narrow(b: IntGraphBuilder, name: str, lo: int, hi: int) -> str:
    """Record on a node's output the width its clamp [lo, hi] gives it (the builder says 8 bits)."""
    signed = lo < 0
    bits = next(n for n in range(1, 9) if ((-(1 << n - 1) <= lo and hi < 1 << n - 1) if signed else hi < 1 << n))
    b.graph.values[name].meta.update(bits=bits, signed=signed)
    return name


def small_conv(b, x, rng, cout, bits, **kw) -> str:
    lo, hi = (0, (1 << bits) - 1) if kw.pop("relu", True) else (-(1 << bits - 1), (1 << bits - 1) - 1)
    return narrow(b, conv(b, x, rng, cout, dtype="uint8" if lo == 0 else "int8", lo=lo, hi=hi, **kw), lo, hi)


@st.composite
def packed_cnns(draw: st.DrawFn) -> tuple[Graph, int]:
    """Small CNNs whose inner activations have ``bits`` (2 or 4) bits: convs of every variant
    (strided, depthwise, asymmetric pads), residual adds, max pools (padded or not), a reshape
    and a global pool; odd
    plane sizes, so fields of two channels share a byte."""
    bits = draw(st.sampled_from([2, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    b = IntGraphBuilder("packed_cnn")
    x = b.input("x", (1, draw(st.integers(1, 3)), draw(st.integers(3, 9)), draw(st.integers(3, 9))))
    cur = small_conv(b, x, rng, draw(st.integers(2, 5)), bits)
    for kind in draw(st.lists(st.sampled_from(["conv", "strided", "depthwise", "residual", "pads", "maxpool"]),
                              min_size=1, max_size=4)):
        ch = b.graph.values[cur].shape[1]
        kernel = draw(st.sampled_from(CONV_KERNELS))
        if kind == "conv":
            cur = small_conv(b, cur, rng, draw(st.integers(2, 5)), bits, relu=draw(st.booleans()), shift=7)
        elif kind == "strided":
            cur = small_conv(b, cur, rng, draw(st.integers(2, 5)), bits, stride=2, shift=7)
        elif kind == "depthwise":
            cur = small_conv(b, cur, rng, ch, bits, group=ch, shift=6)
        elif kind == "maxpool" and min(b.graph.values[cur].shape[2:]) >= 3:
            pads = draw(st.sampled_from([(0, 0, 0, 0), (1, 1, 1, 1)]))
            pool = b.op("QMaxPool", [cur], dtype=b.graph.values[cur].dtype, kernel_shape=(3, 2), strides=(2, 1),
                        pads=pads, dilations=(1, 1), ceil_mode=0)
            b.graph.values[pool].meta.update(bits=b.graph.values[cur].meta["bits"],
                                             signed=b.graph.values[cur].meta["signed"])
            cur = pool
        elif kind == "pads":
            cur = small_conv(b, cur, rng, ch, bits, pads=(2, 0, 0, 2), shift=7)
        else:
            y = small_conv(b, small_conv(b, cur, rng, ch, bits, shift=7), rng, ch, bits, relu=False, shift=7)
            hi = (1 << bits) - 1
            cur = narrow(b, b.op("QAdd", [cur, y], dtype="uint8", shift_a=1, shift_b=0, shift=1, lo=0, hi=hi,
                                 negate_b=False), 0, hi)
        b.graph.nodes[-1].meta["kernel"] = kernel if b.graph.nodes[-1].op == "QConv" else None
    _, ch, h, w = b.graph.values[cur].shape
    m, k = reciprocal(h * w, 255)
    g = narrow(b, b.op("QGlobalAvgPool", [cur], dtype="uint8", m=m, k=k, shift_base=0, lo=0, hi=(1 << bits) - 1),
               0, (1 << bits) - 1)
    flat = b.op("QReshape", [g], dtype="uint8", shape=(1, ch), keep_batch=True)
    b.graph.values[flat].meta.update(b.graph.values[g].meta)
    fc = b.op("QGemm", [flat, b.const("fw", random_weights(rng, (3, ch))), b.const("fb", np.zeros(3, np.int32))],
              shift=(4,) * 3, lo=-128, hi=127)
    for node in b.graph.nodes:
        if node.meta.get("kernel") is None:
            node.meta.pop("kernel", None)
    return b.build(fc), bits


@needs_cc
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packed_cnns())
def test_packed_cnns_run_bit_exact_on_a_poisoned_arena(case) -> None:
    graph, bits = case
    packed = pack_activations(graph)
    inner = [n for n in packed.activations() if n not in packed.inputs + packed.outputs]
    # every inner value but the Gemm's input (a reshape of the pool output; QGemm reads bytes) is packed
    gemm_in = {packed.nodes[-1].inputs[0], packed.nodes[-2].inputs[0]}
    assert all(packed_bits(packed.values[n]) == bits for n in inner if n not in gemm_in)
    assert not any(packed_bits(packed.values[n]) for n in gemm_in | set(packed.inputs) | set(packed.outputs))
    assert planned_memory(packed).arena_bytes < planned_memory(graph).arena_bytes
    x = random_int_inputs(graph, n=3)
    with tempfile.TemporaryDirectory(prefix="pqc_packed_") as tmp:
        emit_c(packed, tmp)
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        assert {layer["value"]: layer["packed"] for layer in manifest["layers"]} == {
            n.outputs[0]: packed_bits(packed.values[n.outputs[0]]) for n in packed.nodes}
        got = run_c(build(tmp, poison=True), x, dump_layers=True).layers
    want = simulate(graph, x, capture=True)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_value_is_packed_only_where_every_kernel_touching_it_reads_fields():
    rng = np.random.default_rng(0)
    b = IntGraphBuilder("mixed")
    c1 = small_conv(b, b.input("x", (1, 2, 6, 6)), rng, 3, 4)
    pool = b.op("QMaxPool", [c1], dtype="uint8", kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0),
                dilations=(1, 1), ceil_mode=0)
    b.graph.values[pool].meta.update(b.graph.values[c1].meta)
    c2 = small_conv(b, pool, rng, 3, 4)  # read by an average pool, which reads bytes only
    avg = b.op("QAvgPool", [c2], **avg_attrs([4], kernel_shape=(2, 2), strides=(1, 1), pads=(0, 0, 0, 0),
                                             ceil_mode=0, count_include_pad=0), shift_base=0, lo=-128, hi=127)
    wide = conv(b, avg, rng, 2, k=1, pads=(0, 0, 0, 0))  # 8 bits: no field holds it
    graph = pack_activations(b.build(conv(b, wide, rng, 2)))
    assert packed_bits(graph.values[c1]) == packed_bits(graph.values[pool]) == 4
    assert not any(PACKED_BITS in graph.values[v].meta for v in (c2, avg, wide))
    assert PACKED_BITS not in b.graph.values[c1].meta  # a pure pass: the input graph is unchanged


# ----------------------------------------------------------------------------- the CLI
def test_compile_packs_a4_activations_and_auto_keeps_bytes_when_the_budget_allows(small_cnn_onnx: Path,
                                                                                   tmp_path: Path) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32))
    common = [str(small_cnn_onnx), "--calib", str(calib), "--wbits", "4", "--abits", "4", "--first-output-bits",
              "4", "--schedule", "plain", "-q"]  # the layout alone (row streaming: test_streaming.py)
    totals, reports = {}, {}
    for name, extra in (("packed", []), ("bytes", ["--activations", "bytes", "--no-verify"]),
                        ("auto", ["--ram-budget", "1M", "--no-verify"])):
        assert main(["compile", *common, "-o", str(tmp_path / name), *extra]) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
        totals[name] = reports[name]["totals"]
    assert totals["packed"]["packed_activations"] > 0  # and it verified: the default compile runs the harness
    assert totals["bytes"]["packed_activations"] == totals["auto"]["packed_activations"] == 0
    assert totals["packed"]["arena_bytes"] < totals["bytes"]["arena_bytes"] == totals["auto"]["arena_bytes"]
    tight = reports["auto"]["ram_budget"]["needed_bytes"] - 1  # bytes do not fit this, packed does
    assert main(["compile", *common, "-o", str(tmp_path / "tight"), "--no-verify", "--ram-budget", str(tight)]) == 0
    assert json.loads((tmp_path / "tight" / "report.json").read_text())["totals"]["packed_activations"] > 0
