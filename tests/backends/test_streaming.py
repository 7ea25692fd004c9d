"""Row-streamed execution (issue 11, item 3): which chains stream, the driver's row order, the arena
planned for it, and the C of random streamed CNNs computing the simulator's integers on a poisoned
arena for every conv variant, stride, padding, dilation, depthwise and residual shape, bytes or
packed; the schedule choice under a RAM budget."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder, conv, random_int_inputs, random_weights
from pqc.backends.activation_layout import pack_activations, packed_bits
from pqc.backends.c_emitter import emit_c, planned_memory
from pqc.backends.harness import build, run_c
from pqc.backends.memory_plan import check_plan, scratch_name
from pqc.backends.schedule import candidates, choose_schedule
from pqc.backends.simulator import simulate
from pqc.backends.streaming import (STREAM, STREAMED, overwrite_safe, row_events, stream_candidates, stream_layers,
                                    streamed_values, streams)
from pqc.cli import main
from pqc.errors import PqcError
from pqc.intmath import reciprocal
from pqc.ir import Graph

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="gcc/make missing")
CONV_KERNELS = ("qconv_tables", "qconv_fast", "qconv_compact", "qconv_unrolled")


def add(b: IntGraphBuilder, a: str, c: str, lo: int = -128, hi: int = 127) -> str:
    return b.op("QAdd", [a, c], dtype="uint8" if lo == 0 else "int8", shift_a=1, shift_b=0, shift=1, lo=lo, hi=hi,
                negate_b=False)


def residual_net() -> Graph:
    """stem -> [conv, conv, add(stem)] -> [conv s2, conv, add(1x1 s2 shortcut)] -> 1x1 s2 -> conv."""
    rng = np.random.default_rng(5)
    b = IntGraphBuilder("res")
    stem = conv(b, b.input("x", (1, 2, 9, 8)), rng, 4)
    r1 = add(b, stem, conv(b, conv(b, stem, rng, 4, shift=8), rng, 4, shift=8))
    short = conv(b, r1, rng, 6, k=1, stride=2, pads=(0, 0, 0, 0), shift=8)
    r2 = add(b, short, conv(b, conv(b, r1, rng, 6, stride=2, shift=8), rng, 6, shift=8))
    tail = conv(b, r2, rng, 5, k=1, stride=2, pads=(0, 0, 0, 0), shift=8)  # a 1x1 s2 consumer is never fed
    return b.build(conv(b, tail, rng, 3))


def test_candidates_are_the_maximal_streamable_chains():
    g = residual_net()
    names = [n.name for n in g.nodes]
    chains = stream_candidates(g)
    # stem feeds two readers (block conv and add): not streamed; each block's convs + add are;
    # the 1x1 stride-2 conv reads every other row of r2, so it is not fed, but it heads the last chain
    assert chains == [tuple(names[1:4]), (names[5], names[6], names[7]), (names[8], names[9])]
    # the shortcut conv (names[4]) also feeds the second add, but the longer chain behind it wins
    assert names[4] not in {n for c in chains for n in c}


def test_stream_layers_is_a_pure_pass_that_reorders_and_marks():
    g = residual_net()
    original = [n.name for n in g.nodes]
    shortcut_first = [original[i] for i in (0, 1, 2, 3, 5, 4, 6, 7, 8, 9)]  # the shortcut before the block's convs
    g.nodes[:] = [next(n for n in g.nodes if n.name == name) for name in shortcut_first]
    chains = stream_candidates(g)
    s = stream_layers(g, chains)
    assert [n.name for n in g.nodes] == shortcut_first and not streams(g)  # input untouched
    assert streams(s) == chains
    order = [n.name for n in s.nodes]
    for i, chain in enumerate(chains):
        at = order.index(chain[0])
        assert tuple(order[at:at + len(chain)]) == chain  # contiguous
        assert [s.nodes[at + j].meta[STREAM] for j in range(len(chain))] == [(i, j) for j in range(len(chain))]
    inner = {s.nodes[order.index(n)].outputs[0] for c in chains for n in c[:-1]}
    assert streamed_values(s) == inner and all(s.values[v].meta[STREAMED] for v in inner)
    for bad in ([original[1]], [original[0], original[1]], [original[8], original[9], original[0]]):
        with pytest.raises(PqcError, match="cannot stream"):
            stream_layers(g, [bad])
    with pytest.raises(PqcError, match="already streamed"):
        stream_layers(s, [])


def test_row_events_read_each_input_row_once_in_order_and_write_every_output_row():
    g = residual_net()
    s = stream_layers(g, stream_candidates(g))
    chain = streams(s)[0]  # conv, conv, add over the stem's output (read by the head's ring and the add)
    head_in = next(n for n in s.nodes if n.name == chain[0]).inputs[0]
    events = row_events(s, chain)
    reads = [row for kind, v, row in events if kind == "read" and v == head_in]
    writes = [row for kind, _, row in events if kind == "write"]
    assert writes == list(range(9))
    assert sorted(reads) == sorted(list(range(9)) * 2)  # once by the ring band, once as the add's operand
    first_read = {row: events.index(("read", head_in, row)) for row in range(9)}
    assert all(first_read[r] < first_read[r + 1] for r in range(8))
    assert overwrite_safe(s, chain, {head_in})


def test_the_arena_keeps_the_bands_and_drops_the_streamed_tensors():
    g = residual_net()
    s = stream_layers(g, stream_candidates(g))
    plan, plain = planned_memory(s), planned_memory(g)
    assert plan.arena_bytes < plain.arena_bytes
    for chain in streams(s):
        steps = [i for i, n in enumerate(s.nodes) if n.name in chain]
        for name in chain:
            if scratch_name(name) in plan.lifetimes:  # bands and the add's row buffer live over the whole stream
                assert plan.lifetimes[scratch_name(name)] == (steps[0], steps[-1])
    assert not streamed_values(s) & set(plan.buffers)
    # the add of the identity block writes over the stem's output row by row
    first_add = next(n for n in s.nodes if n.name == streams(s)[0][-1])
    assert plan.roots[first_add.outputs[0]] == plan.roots[first_add.inputs[0]]
    bad = type(plan)(**{**plan.__dict__, "buffers": {**plan.buffers, next(iter(streamed_values(s))): (0, 4)}})
    with pytest.raises(ValueError, match="has storage"):
        check_plan(s, bad)


def narrow(b: IntGraphBuilder, name: str, bits: int, signed: bool) -> str:
    b.graph.values[name].meta.update(bits=bits, signed=signed)
    return name


def clamped_conv(b, x, rng, cout, bits, relu=True, **kw) -> str:
    """A conv whose output clamp fits ``bits`` bits (8: the int8 range), so 2 and 4 bits may pack."""
    lo, hi = (0, (1 << bits) - 1) if relu else (-(1 << bits - 1), (1 << bits - 1) - 1)
    return narrow(b, conv(b, x, rng, cout, dtype="uint8" if relu else "int8", lo=lo, hi=hi, **kw), bits, not relu)


@st.composite
def streamable_cnns(draw: st.DrawFn) -> tuple[Graph, int]:
    """Small CNNs of chains that stream: 3x3 convs with asymmetric pads, 1x1, 5x5, strided and
    dilated convs, depthwise, identity and downsampling residual blocks; odd sizes; every conv
    kernel variant; activations of 8, 4 or 2 bits (the latter two packed where they can)."""
    bits = draw(st.sampled_from([8, 4, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    b = IntGraphBuilder("streamable")
    x = b.input("x", (1, draw(st.integers(1, 3)), draw(st.integers(5, 11)), draw(st.integers(4, 10))))
    cur = clamped_conv(b, x, rng, draw(st.integers(2, 4)), bits)
    for kind in draw(st.lists(st.sampled_from(["conv", "pads", "1x1", "5x5", "strided", "dilated", "depthwise",
                                               "residual", "downsample"]), min_size=2, max_size=6)):
        ch, h = b.graph.values[cur].shape[1:3]
        kw = {"relu": draw(st.booleans()), "shift": 7}
        if kind == "conv":
            cur = clamped_conv(b, cur, rng, draw(st.integers(2, 5)), bits, **kw)
        elif kind == "pads":
            t, bot = draw(st.sampled_from([(2, 0), (0, 2), (1, 0), (2, 1)]))
            left, right = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            if b.graph.values[cur].shape[3] + left + right >= 3:  # the window fits the padded row
                cur = clamped_conv(b, cur, rng, ch, bits, pads=(t, left, bot, right), **kw)
        elif kind == "1x1":
            cur = clamped_conv(b, cur, rng, draw(st.integers(2, 5)), bits, k=1, pads=(0, 0, 0, 0), **kw)
        elif kind == "5x5" and h >= 3:
            cur = clamped_conv(b, cur, rng, ch, bits, k=5, pads=(2, 2, 2, 2), **kw)
        elif kind == "strided" and h >= 3:
            cur = clamped_conv(b, cur, rng, draw(st.integers(2, 5)), bits, stride=2, **kw)
        elif kind == "dilated" and h >= 3:
            cur = clamped_conv(b, cur, rng, ch, bits, dilation=2, pads=(2, 2, 2, 2), **kw)
        elif kind == "depthwise":
            cur = clamped_conv(b, cur, rng, ch, bits, group=ch, shift=6)
        elif kind == "residual":
            y = clamped_conv(b, clamped_conv(b, cur, rng, ch, bits, shift=7), rng, ch, bits, relu=False, shift=7)
            hi = (1 << bits) - 1 if bits < 8 else 127
            cur = narrow(b, add(b, cur, y, lo=0, hi=hi), bits, False)
        elif kind == "downsample" and h >= 3:
            short = clamped_conv(b, cur, rng, ch + 1, bits, k=1, stride=2, pads=(0, 0, 0, 0), shift=7)
            y = clamped_conv(b, clamped_conv(b, cur, rng, ch + 1, bits, stride=2, shift=7), rng, ch + 1, bits,
                             relu=False, shift=7)
            hi = (1 << bits) - 1 if bits < 8 else 127
            cur = narrow(b, add(b, short, y, lo=0, hi=hi), bits, False)
        if b.graph.nodes[-1].op == "QConv":
            b.graph.nodes[-1].meta["kernel"] = draw(st.sampled_from(CONV_KERNELS))
    _, ch, h, w = b.graph.values[cur].shape
    m, k = reciprocal(h * w, 255)
    g = narrow(b, b.op("QGlobalAvgPool", [cur], dtype="uint8", m=m, k=k, shift_base=0, lo=0, hi=127), 8, False)
    flat = b.op("QReshape", [g], dtype="uint8", shape=(1, ch), keep_batch=True)
    b.graph.values[flat].meta.update(b.graph.values[g].meta)
    fc = b.op("QGemm", [flat, b.const("fw", random_weights(rng, (3, ch))), b.const("fb", np.zeros(3, np.int32))],
              shift=(4,) * 3, lo=-128, hi=127)
    return b.build(fc), bits


@needs_cc
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streamable_cnns(), st.booleans())
def test_streamed_cnns_run_bit_exact_on_a_poisoned_arena(case, packed) -> None:
    graph, bits = case
    chains = stream_candidates(graph)
    streamed = stream_layers(graph, chains)
    if packed:
        streamed = pack_activations(streamed)
    assert not any(packed_bits(streamed.values[v]) for v in streamed_values(streamed))
    x = random_int_inputs(graph, n=3)
    with tempfile.TemporaryDirectory(prefix="pqc_stream_") as tmp:
        emit_c(streamed, tmp)
        source = (Path(tmp) / "model.c").read_text()
        assert source.count("_next0(") >= 2 * len(chains)  # a driver per stream
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        assert {layer["value"] for layer in manifest["layers"] if not layer["stored"]} == streamed_values(streamed)
        got = run_c(build(tmp, poison=True), x, dump_layers=True).layers
    want = simulate(graph, x, capture=True)
    assert set(want) - set(got) == streamed_values(streamed)  # every stored layer was compared
    for name in got:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_schedule_choice_fits_the_budget_with_the_fewest_estimated_instructions():
    g = residual_net()
    options = {c.label: c for c in candidates(g, "speed", None)}
    assert set(options) == {"bytes/plain", "bytes/streamed"}  # 8-bit: nothing to pack
    plain, streamed = options["bytes/plain"], options["bytes/streamed"]
    assert streamed.ram_bytes < plain.ram_bytes
    assert choose_schedule(g, "speed", None).label == "bytes/streamed"  # no budget: the smallest arena
    assert choose_schedule(g, "speed", None, ram_budget=streamed.ram_bytes).label == "bytes/streamed"
    assert choose_schedule(g, "speed", None, schedule="plain").label == "bytes/plain"
    assert choose_schedule(g, "speed", None, activations="packed").label == "bytes/streamed"  # nothing to pack
    with pytest.raises(PqcError, match="unknown schedule"):
        candidates(g, "speed", None, schedule="rows")


def test_auto_keeps_layer_by_layer_where_in_place_convs_need_less():
    """Same-shape convs write over their input in place (ring bands): one tensor and one band;
    streamed, every conv's band is live at once besides the output, which on a 4x4 map is more."""
    rng = np.random.default_rng(2)
    b = IntGraphBuilder("same")
    cur = conv(b, b.input("x", (1, 2, 4, 4)), rng, 8)
    for _ in range(3):
        cur = conv(b, cur, rng, 8, shift=8)
    g = b.build(conv(b, cur, rng, 3, k=1, pads=(0, 0, 0, 0)))
    options = {c.label: c for c in candidates(g, "speed", None)}
    assert options["bytes/streamed"].arena_bytes > options["bytes/plain"].arena_bytes
    assert choose_schedule(g, "speed", None).label == "bytes/plain"


def test_compile_streams_by_default_and_takes_schedule_flags(small_cnn_onnx: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32))
    common = [str(small_cnn_onnx), "--calib", str(calib), "-q"]
    assert main(["compile", *common, "-o", str(tmp_path / "auto")]) == 0  # verified: gcc, clang, sanitizers, RV32I
    assert main(["compile", *common, "-o", str(tmp_path / "plain"), "--schedule", "plain", "--no-verify"]) == 0
    reports = {k: json.loads((tmp_path / k / "report.json").read_text()) for k in ("auto", "plain")}
    assert reports["auto"]["totals"]["streams"] and not reports["plain"]["totals"]["streams"]
    assert reports["auto"]["totals"]["arena_bytes"] < reports["plain"]["totals"]["arena_bytes"]
    assert "row-streamed" in (tmp_path / "auto" / "report.md").read_text()
    assert reports["auto"]["verification"]["ok"]
