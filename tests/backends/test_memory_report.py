"""RAM per schedule step, the lifetime picture, the RAM budget and the poisoned-arena run: the
figures agree with liveness re-derived from the graph, the picture is stable XML, a budget the
model exceeds is refused naming the peak layer, and a plan that frees a buffer too early is caught."""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_graph_builder import IntGraphBuilder, avg_attrs, conv, random_int_inputs, zoo
from pqc.backends import c_emitter
from pqc.backends.c_emitter import emit_c, planned_memory
from pqc.backends.firmware import ram_fit, run_firmware
from pqc.backends.harness import build, run_c, verify
from pqc.backends.memory_plan import MemoryPlan, poison_ranges, scratch_name
from pqc.backends.memory_report import memory_svg, peak_step, ram_needed, step_memory
from pqc.backends.simulator import simulate
from pqc.cli import main
from pqc.errors import PqcError, VerificationError
from pqc.intmath import reciprocal
from pqc.ir import Graph

needs_cc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="gcc/make missing")


@st.composite
def cnn_graphs(draw: st.DrawFn) -> Graph:
    """Small integer CNNs of odd sizes: convs (strided, depthwise), residual adds, concats, pools."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    b = IntGraphBuilder("random_cnn")
    x = b.input("x", (1, draw(st.integers(1, 3)), draw(st.integers(5, 9)), draw(st.integers(5, 9))))
    cur = conv(b, x, rng, draw(st.integers(2, 4)))
    for kind in draw(st.lists(st.sampled_from(["conv", "depthwise", "residual", "concat", "maxpool", "avgpool"]),
                              min_size=1, max_size=4)):
        _, ch, h, w = b.graph.values[cur].shape
        if kind == "conv":
            cur = conv(b, cur, rng, draw(st.integers(2, 4)), stride=draw(st.sampled_from([1, 2])))
        elif kind == "depthwise":
            cur = conv(b, cur, rng, ch, group=ch, shift=8)
        elif kind == "residual":
            y = conv(b, conv(b, cur, rng, ch), rng, ch)
            cur = b.op("QAdd", [cur, y], shift_a=1, shift_b=0, shift=1, lo=-128, hi=127, negate_b=False)
        elif kind == "concat":
            cur = b.op("QConcat", [conv(b, cur, rng, 2, k=1, pads=(0, 0, 0, 0)), cur], axis=1, shifts=(0, 1),
                       lo=-128, hi=127)
        elif kind == "maxpool" and min(h, w) >= 2:
            cur = b.op("QMaxPool", [cur], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1),
                       ceil_mode=0)
        elif kind == "avgpool" and min(h, w) >= 2:
            cur = b.op("QAvgPool", [cur], **avg_attrs([4, 6, 9], kernel_shape=(3, 3), strides=(2, 2),
                                                      pads=(1, 1, 1, 1), ceil_mode=0, count_include_pad=0),
                       shift_base=0, lo=-128, hi=127)
    if draw(st.booleans()):
        _, _, h, w = b.graph.values[cur].shape
        m, k = reciprocal(h * w, 255)
        cur = b.op("QGlobalAvgPool", [cur], m=m, k=k, shift_base=0, lo=-128, hi=127)
    return b.build(cur)


def live_by_reads(graph: Graph, plan: MemoryPlan, step: int) -> set[str]:
    """Arena buffers live at ``step``, re-derived from the graph: storage produced at or before the
    step and read (or an output) at or after it, plus the step's scratch."""
    root = plan.roots
    producer = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs}
    reads: dict[str, set[int]] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v in root:
                reads.setdefault(root[v], set()).add(i)
    for v in graph.outputs:
        reads.setdefault(root[v], set()).add(len(graph.nodes))
    live = {r for r in set(root.values()) if r in plan.lifetimes
            and producer.get(r, -1) <= step <= max(reads.get(r, {producer.get(r, -1)}))}
    scratch = scratch_name(graph.nodes[step].name)
    return live | ({scratch} if scratch in plan.buffers else set())


@settings(max_examples=25, deadline=None)
@given(cnn_graphs())
def test_per_step_live_bytes_are_the_live_set_and_peak_at_the_lower_bound(graph: Graph) -> None:
    plan = planned_memory(graph)
    steps = step_memory(graph, plan)
    assert [s.step for s in steps] == list(range(len(graph.nodes)))
    for s in steps:
        assert set(s.names) == live_by_reads(graph, plan, s.step), s.node
        assert all(size == plan.buffers[b][1] for b, size in s.buffers)
        assert s.live_bytes == sum(-(-size // 4) * 4 for _, size in s.buffers) <= plan.arena_bytes
    assert peak_step(steps).live_bytes == max(s.live_bytes for s in steps) == plan.arena_lower_bound_bytes
    for s in steps:  # the poisoned bytes never touch a value still to be read
        kept = [plan.buffers[b] for b in s.names if plan.lifetimes[b][0] < s.step]
        for lo, hi in poison_ranges(plan, s.step):
            assert 0 <= lo < hi <= plan.arena_bytes
            assert all(hi <= off or off + size <= lo for off, size in kept)


def test_poison_ranges_are_the_complement_of_the_values_still_to_be_read() -> None:
    plan = MemoryPlan(arena_bytes=64, buffers={"a": (0, 16), "b": (32, 8), "c": (16, 16)}, roots={"a": "a"},
                      lifetimes={"a": (0, 2), "b": (1, 1), "c": (2, 3)})
    assert poison_ranges(plan, 0) == [(0, 64)]  # nothing computed yet
    assert poison_ranges(plan, 1) == [(16, 64)]  # a is read later; b is step 1's own output
    assert poison_ranges(plan, 2) == [(16, 64)]
    assert poison_ranges(plan, 3) == [(0, 16), (32, 64)]


def test_memory_svg_is_well_formed_deterministic_and_escaped() -> None:
    graph, again = zoo(), zoo()
    graph.name = again.name = 'zoo <&> "quoted"'
    plan = planned_memory(graph)
    svg = memory_svg(graph, plan)
    assert svg == memory_svg(again, planned_memory(again))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    boxes = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert len(boxes) == len(plan.lifetimes)  # one box per arena buffer
    assert 'zoo <&> "quoted"' in "".join(root.itertext())
    assert f"lower bound {plan.arena_lower_bound_bytes:,} B" in svg and "(peak)" in svg


def test_ram_needed_is_the_manifest_account_and_names_the_peak(tmp_path: Path) -> None:
    graph = zoo()
    emit_c(graph, tmp_path)
    fit = ram_needed(graph, 2000)
    assert dataclasses.replace(fit, peak=None) == ram_fit(tmp_path, 2000)
    peak = peak_step(step_memory(graph, planned_memory(graph)))
    assert not fit.fits and f"the peak is at step {peak.step}, layer {peak.node!r} ({peak.op})" in str(fit)
    assert all(f"{name} {size:,} B" in str(fit) for name, size in peak.buffers)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "arena_bytes": 52032}))
    with pytest.raises(PqcError, match=rf"microbit has 16,384 B of RAM.*does NOT fit.*layer {peak.node!r}") as err:
        run_firmware(graph, tmp_path, "microbit", random_int_inputs(graph, n=1), tmp_path / "fw")
    assert "\n" not in str(err.value)


def residual() -> Graph:
    """conv -> conv -> conv -> add (the first conv's output is the skip) -> conv."""
    rng = np.random.default_rng(1)
    b = IntGraphBuilder("residual")
    x = b.input("x", (1, 2, 6, 5))
    c1 = conv(b, x, rng, 3)
    y = conv(b, conv(b, c1, rng, 3), rng, 3)
    return b.build(conv(b, b.op("QAdd", [c1, y], shift_a=1, shift_b=0, shift=1, lo=-128, hi=127, negate_b=False),
                        rng, 2))


@needs_cc
def test_poisoned_run_catches_a_plan_that_frees_a_buffer_too_early(tmp_path: Path, monkeypatch) -> None:
    graph, x = residual(), random_int_inputs(residual(), n=3)
    real = c_emitter.plan_memory

    def skip_dies_early(*args, **kw) -> MemoryPlan:  # the real placement; the skip marked dead once computed
        plan = real(*args, **kw)
        skip = plan.roots[graph.nodes[0].outputs[0]]
        assert plan.lifetimes[skip][1] >= 3
        return dataclasses.replace(plan, lifetimes={**plan.lifetimes, skip: (0, 0)})

    monkeypatch.setattr(c_emitter, "plan_memory", skip_dies_early)
    emit_c(graph, tmp_path)
    # the placement is still valid, so the plain build agrees with the simulator ...
    assert np.array_equal(run_c(build(tmp_path), x).outputs, simulate(graph, x)[graph.outputs[0]])
    # ... and the poisoned one does not: the value the plan calls dead is still read
    assert not np.array_equal(run_c(build(tmp_path, poison=True), x).outputs, simulate(graph, x)[graph.outputs[0]])
    with pytest.raises(VerificationError) as err:
        verify(graph, tmp_path, x)
    report = err.value.report
    assert report.status("gcc build and compare") == "passed"
    assert report.status("sanitizers (undefined,address)") == "failed"


@needs_cc
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cnn_graphs())
def test_random_cnns_run_bit_exact_on_a_poisoned_arena(graph: Graph) -> None:
    x = random_int_inputs(graph, n=4)
    with tempfile.TemporaryDirectory(prefix="pqc_poison_") as tmp:
        emit_c(graph, tmp)
        got = run_c(build(tmp, poison=True), x, dump_layers=True).layers
    want = simulate(graph, x, capture=True)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def same_shape_chain(kernel: str, k: int, dilation: int, pads: tuple[int, int, int, int], group: int) -> Graph:
    """x -> conv -> conv of the same shape (kernel ``kernel``; its input dies there) -> conv."""
    rng = np.random.default_rng(k + dilation + sum(pads) + group)
    b = IntGraphBuilder("same_shape")
    first = conv(b, b.input("x", (1, 2, 7, 6)), rng, 4)
    mid = conv(b, first, rng, 4, k=k, pads=pads, dilation=dilation, group=group, shift=8)
    b.graph.nodes[-1].meta["kernel"] = kernel
    return b.build(conv(b, mid, rng, 3))


@needs_cc
@pytest.mark.parametrize("kernel", ["qconv_tables", "qconv_fast", "qconv_compact", "qconv_unrolled"])
@pytest.mark.parametrize("k, dilation, pads, group", [
    (3, 1, (1, 1, 1, 1), 1), (3, 1, (2, 1, 0, 1), 4), (3, 1, (0, 0, 2, 2), 1), (3, 2, (2, 2, 2, 2), 2),
    (5, 1, (1, 2, 3, 2), 1)])
def test_a_conv_of_its_inputs_shape_writes_over_its_input_through_the_ring_band(kernel, k, dilation, pads, group):
    graph = same_shape_chain(kernel, k, dilation, pads, group)
    first, mid = graph.nodes[0].outputs[0], graph.nodes[1].outputs[0]
    plan = planned_memory(graph)
    assert plan.roots[mid] == first and graph.nodes[1].name in plan.overwrites
    x = random_int_inputs(graph, n=3)
    with tempfile.TemporaryDirectory(prefix="pqc_ring_") as tmp:
        emit_c(graph, tmp)
        assert "_band_next(" in (Path(tmp) / "model.c").read_text()
        got = run_c(build(tmp, poison=True), x, dump_layers=True).layers
    want = simulate(graph, x, capture=True)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_conv_whose_input_is_read_later_or_strided_keeps_its_own_buffer() -> None:
    rng = np.random.default_rng(3)
    b = IntGraphBuilder("kept")
    first = conv(b, b.input("x", (1, 2, 6, 6)), rng, 3)
    mid = conv(b, first, rng, 3)  # same shape, but the add below still reads `first`
    strided = conv(b, mid, rng, 3, stride=2)
    graph = b.build(b.op("QAdd", [first, conv(b, mid, rng, 3)], shift_a=0, shift_b=0, shift=1, lo=-128, hi=127,
                         negate_b=False))
    plan = planned_memory(graph)
    assert plan.roots[mid] == mid and graph.nodes[1].name not in plan.overwrites
    assert plan.roots[strided] == strided


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture(autouse=True)
def _keep_verbosity():
    """`main` sets the console's verbosity for the process; later tests expect it unchanged."""
    from pqc import console

    before = console.verbosity()
    yield
    console.set_verbosity(before)


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=np.random.default_rng(0).normal(0, 1, (8, 1, 16, 16)).astype(np.float32))
    return path


def test_compile_refuses_a_ram_budget_in_one_line_naming_the_peak_layer(small_cnn_onnx: Path, calib: Path,
                                                                       tmp_path: Path, capsys) -> None:
    out = tmp_path / "b"
    assert main(["compile", str(small_cnn_onnx), "-o", str(out), "--calib", str(calib), "--no-verify",
                 "--ram-budget", "2K", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not fit the RAM budget of 2,048 B" in err
    assert "the peak is at step " in err and ", layer '" in err and " B live: " in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a staging folder
    assert main(["compile", str(small_cnn_onnx), "-o", str(out), "--ram-budget", "lots"]) == 2
    assert "cannot read 'lots' as a size" in capsys.readouterr().err


def test_compile_under_a_budget_reports_ram_per_step_and_the_picture(small_cnn_onnx: Path, calib: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert main(["compile", str(small_cnn_onnx), "-o", str(out), "--calib", str(calib), "--no-verify",
                 "--ram-budget", "64K", "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    steps, totals = report["memory"]["steps"], report["totals"]
    assert len(steps) == len(report["layers"])
    assert max(s["live_bytes"] for s in steps) == totals["arena_lower_bound_bytes"]
    peak = steps[totals["ram_peak_step"]]
    assert peak["live_bytes"] == totals["arena_lower_bound_bytes"] and peak["node"] == totals["ram_peak_layer"]
    assert report["ram_budget"]["budget_bytes"] == 65536 and report["ram_budget"]["needed_bytes"] <= 65536
    md = (out / "report.md").read_text()
    assert "## RAM per step" in md and "[memory.svg](memory.svg)" in md
    ET.fromstring((out / "memory.svg").read_text())
