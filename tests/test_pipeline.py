"""The pass manager: registry, spec parsing, editing, stepping, verification, dumps, timings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ir_builder import GraphBuilder, conv_attrs
from pqc.errors import InternalError, PqcError
from pqc.ir import Graph
from pqc.pipeline import PassContext, PassStep, Pipeline, parse_value, register_pass, registered_passes

torch.set_num_threads(1)


@register_pass("test_scale")
def _scale_pass(graph: Graph, ctx: PassContext, *, factor: float = 1.0, flip: bool = False, tag: str = "t") -> Graph:
    """Multiply every float constant by ``factor`` (negated when ``flip``); record ``tag``."""
    g = graph.copy()
    for value in g.values.values():
        if value.is_const:
            value.data = value.data * np.float32(-factor if flip else factor)
    ctx.state.setdefault("tags", []).append(tag)
    return g


@register_pass("test_break_shape")
def _break_shape_pass(graph: Graph, ctx: PassContext) -> Graph:
    """Declare a wrong output shape (a buggy pass)."""
    g = graph.copy()
    out = g.values[g.outputs[0]]
    out.shape = tuple(d + 1 for d in out.shape)
    return g


@register_pass("test_count")
class _CountPass:
    """A class-based pass: counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, graph: Graph, ctx: PassContext, *, step: int = 1) -> Graph:
        self.calls += step
        return graph.copy()


def small_graph() -> Graph:
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 6, 6))
    y = b.op("Conv", [x, b.const("w", np.ones((3, 2, 3, 3), np.float32))], **conv_attrs())
    y = b.op("Relu", [y])
    y = b.op("Flatten", [y], axis=1)
    y = b.op("Gemm", [y, b.const("fc", np.full((108, 4), 0.01, np.float32))], alpha=1.0, beta=1.0, transA=0, transB=0)
    return b.build(y)


def test_parse_typed_options_and_round_trip():
    p = Pipeline.parse(
        "canonicalize, quantize(method=naive, wbits=3,abits=6,first_last_bits=none), test_scale(factor=2,flip=TRUE,tag='a,b')"
    )
    assert p.names() == ["canonicalize", "quantize", "test_scale"]
    assert p.steps[1].options == {"method": "naive", "wbits": 3, "abits": 6, "first_last_bits": None}
    opts = p.steps[2].options
    assert opts == {"factor": 2.0, "flip": True, "tag": "a,b"} and isinstance(opts["factor"], float)
    again = Pipeline.parse(str(p))
    assert [(s.name, s.options) for s in again] == [(s.name, s.options) for s in p]


@pytest.mark.parametrize("text,value", [("4", 4), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("true", True),
                                        ("False", False), ("none", None), ("lp", "lp"), ("'4'", "4")])
def test_parse_value(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


@pytest.mark.parametrize("spec,message", [
    ("canonicalize,nosuchpass", "unknown pass 'nosuchpass'; known passes: .*canonicalize.*quantize"),
    ("quantize(bits=4)", "no option 'bits'; its options: wbits=8, abits=8"),
    ("quantize(wbits=9)", "wbits must be an integer in 2..8"),
    ("quantize(wbits=four)", "option 'wbits' expects a int, got 'four'"),
    ("quantize(wbits=2.5)", "expects a int"),
    ("test_scale(flip=1)", "expects a bool"),
    ("quantize(wbits)", "is not key=value"),
    ("quantize(wbits=4", r"unclosed \("),
    ("canonicalize)", "unbalanced"),
    ("canonicalize,,quantize", "empty pass name"),
    ("canonicalize x", "cannot parse"),
])
def test_spec_errors(spec, message):
    with pytest.raises(PqcError, match=message):
        Pipeline.parse(spec)


def test_empty_spec_is_an_empty_pipeline():
    graph = small_graph()
    p = Pipeline.parse("  ")
    assert len(p) == 0 and p.run(graph) is graph


def test_editing():
    p = Pipeline(["canonicalize", "test_scale(factor=3)"])
    p.insert(0, "test_count")
    p.append("test_scale", tag="end")
    assert p.names() == ["test_count", "canonicalize", "test_scale", "test_scale"]
    p.move("test_count", -1)
    assert p.names() == ["canonicalize", "test_scale", "test_scale", "test_count"]
    p.configure(2, factor=0.5)
    assert p.steps[2].options == {"tag": "end", "factor": 0.5}
    assert p.remove("test_scale") == PassStep("test_scale", {"factor": 3.0})
    assert str(p) == "canonicalize,test_scale(tag=end,factor=0.5),test_count"
    with pytest.raises(PqcError, match="no pass 'quantize'; it has: canonicalize"):
        p.remove("quantize")
    with pytest.raises(PqcError, match="no option"):
        p.configure("canonicalize", wbits=2)
    with pytest.raises(PqcError, match="no index 7"):
        p.move(7, 0)


def test_run_and_step_agree_and_record_timings():
    graph = small_graph()
    spec = "test_scale(factor=2,tag=one),canonicalize,test_scale(factor=3,flip=true,tag=two)"
    ctx = PassContext()
    ran = Pipeline.parse(spec).run(graph, ctx)
    assert ctx.state["tags"] == ["one", "two"]
    assert [t.name for t in ctx.timings] == ["test_scale", "canonicalize", "test_scale"]
    assert all(t.seconds >= 0 for t in ctx.timings)

    stepper = Pipeline.parse(spec)
    stepper.start(graph)
    seen = []
    while not stepper.done:
        seen.append(stepper.step())
    assert [n.op for n in seen[0].nodes] == ["Conv", "Relu", "Flatten", "Gemm"]
    assert [n.op for n in seen[1].nodes] == ["Conv", "Flatten", "Gemm"]
    assert str(seen[-1]) == str(ran)
    np.testing.assert_array_equal(seen[-1].const(seen[-1].nodes[0].inputs[1]), -6 * np.ones((3, 2, 3, 3)))
    np.testing.assert_array_equal(graph.const("w"), np.ones((3, 2, 3, 3)))  # input untouched
    assert len(stepper.timings) == 3
    with pytest.raises(PqcError, match="already ran"):
        stepper.step()
    with pytest.raises(PqcError, match="not started"):
        Pipeline(["canonicalize"]).step()


def test_class_pass_is_instantiated_once():
    counter = registered_passes()["test_count"].fn
    before = counter.calls
    Pipeline(["test_count(step=2)", "test_count"]).run(small_graph())
    assert counter.calls - before == 3


def test_verify_names_the_pass():
    graph = small_graph()
    Pipeline(["test_break_shape"]).run(graph)  # without verify the bug goes unnoticed
    with pytest.raises(InternalError, match="pass 'test_break_shape' produced invalid IR"):
        Pipeline(["canonicalize", "test_break_shape"], verify=True).run(graph)


def test_dump_dir_writes_one_snapshot_per_pass(tmp_path):
    calib = np.random.default_rng(0).standard_normal((8, 2, 6, 6)).astype(np.float32)
    p = Pipeline.parse("canonicalize,quantize(wbits=4)", verify=True, dump_dir=tmp_path / "dump")
    out = p.run(small_graph(), PassContext(calib=calib))
    files = sorted(f.name for f in (tmp_path / "dump").iterdir())
    assert files == ["01_canonicalize.txt", "02_quantize.txt"]
    first, second = ((tmp_path / "dump" / f).read_text() for f in files)
    assert "= Conv(" in first and "formats {" not in first
    assert "formats {" in second and "%x: s8 * 2^" in second and "int8 out_axis=0 exps=[" in second
    assert str(out) in second


def test_registered_passes_list_builtins():
    known = registered_passes()
    assert {"canonicalize", "quantize"} <= set(known)
    assert known["quantize"].options["wbits"] == 8
