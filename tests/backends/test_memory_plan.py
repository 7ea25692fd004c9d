"""Liveness buffer planning: no live overlap, aliases share storage, reuse actually happens."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqc.ir import Graph, Node, Value
from pqc.backends.memory_plan import check_plan, plan_memory, scratch_name


def chain(sizes: list[int], dtype: str = "int8", op: str = "QMaxPool") -> Graph:
    """x -> n0 -> n1 -> ... (``op`` nodes) with value i of ``sizes[i]`` elements."""
    g = Graph("chain", inputs=["v0"], outputs=[f"v{len(sizes) - 1}"])
    for i, n in enumerate(sizes):
        g.add_value(Value(f"v{i}", (1, n), dtype))
    for i in range(1, len(sizes)):
        g.nodes.append(Node(op, [f"v{i - 1}"], [f"v{i}"]))
    return g


@st.composite
def random_graphs(draw: st.DrawFn) -> tuple[Graph, dict[str, int]]:
    """Random DAGs: each node reads 1-3 earlier values; some are reshapes (aliases)."""
    g = Graph("random", inputs=["v0"])
    g.add_value(Value("v0", (1, draw(st.integers(1, 64))), "int8"))
    names = ["v0"]
    scratch: dict[str, int] = {}
    for i in range(1, draw(st.integers(1, 14))):
        ins = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        op = draw(st.sampled_from(["QReshape", "QAdd", "QLut", "QConv"])) if len(ins) == 1 else "QAdd"
        src = g.values[ins[0]]
        same = op == "QReshape" or (op != "QConv" and draw(st.booleans()))  # elementwise: may run in place
        shape = (1, src.size) if same else (1, draw(st.integers(1, 64)))
        dtype = src.dtype if same else draw(st.sampled_from(["int8", "uint8", "int32"]))
        g.add_value(Value(f"v{i}", shape, dtype))
        node = Node(op, ins, [f"v{i}"])
        g.nodes.append(node)
        if op != "QReshape" and draw(st.booleans()):
            scratch[node.name] = draw(st.integers(1, 50))
        names.append(f"v{i}")
    g.outputs = [names[-1]] + draw(st.lists(st.sampled_from(names[1:] or names), max_size=1))
    return g, scratch


@settings(max_examples=150, deadline=None)
@given(random_graphs(), st.booleans())
def test_random_graph_plans_have_no_live_overlap(case: tuple[Graph, dict[str, int]], io_external: bool) -> None:
    g, scratch = case
    plan = plan_memory(g, scratch, io_external=io_external)
    check_plan(g, plan, scratch)
    total = sum(b for n, (_, b) in plan.buffers.items() if n in plan.lifetimes)
    assert plan.arena_bytes <= total + 4 * len(plan.lifetimes)
    assert 0 < plan.arena_lower_bound_bytes <= plan.arena_bytes or not plan.lifetimes
    for node in g.nodes:
        if node.op == "QReshape" and node.outputs[0] in plan.buffers:
            assert plan.buffers[node.outputs[0]] == plan.buffers[node.inputs[0]]


def test_chain_reuses_two_buffers_and_keeps_io_outside() -> None:
    g = chain([100, 40, 40, 40, 40, 10])
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.external == {"v0": "input", "v5": "output"}
    assert plan.arena_bytes == 80  # two 40-byte buffers ping-pong
    assert plan.arena_lower_bound_bytes == 80  # what a chain must hold: a layer's input and output
    assert plan.buffers["v1"] != plan.buffers["v2"]
    assert plan.buffers["v1"] == plan.buffers["v3"]


def test_offsets_are_aligned_for_int32_values() -> None:
    g = chain([8, 3, 5, 2, 9], dtype="int8")
    g.values["v2"].dtype = "int32"
    plan = plan_memory(g)
    check_plan(g, plan)
    assert all(off % 4 == 0 for off, _ in plan.buffers.values())
    assert plan.buffers["v2"][1] == 20


def test_residual_value_stays_live_across_the_branch() -> None:
    g = chain([16, 16, 16, 16])
    g.values["v4"] = Value("v4", (1, 16), "int8")
    g.nodes.append(Node("QAdd", ["v1", "v3"], ["v4"]))
    g.outputs = ["v4"]
    plan = plan_memory(g, in_place=False)
    check_plan(g, plan)
    assert plan.lifetimes["v1"] == (0, 3)
    off1 = plan.buffers["v1"][0]
    assert off1 not in {plan.buffers["v2"][0], plan.buffers["v3"][0]}


def test_scratch_is_live_only_at_its_node() -> None:
    g = chain([16, 16, 16, 16])
    scratch = {g.nodes[1].name: 64}
    plan = plan_memory(g, scratch)
    check_plan(g, plan, scratch)
    assert plan.lifetimes[scratch_name(g.nodes[1].name)] == (1, 1)
    assert plan.arena_bytes == plan.arena_lower_bound_bytes == 16 + 16 + 64


def test_checker_catches_overlapping_live_buffers() -> None:
    g = chain([16, 16, 16, 16])
    plan = plan_memory(g)
    bad = dict(plan.buffers, v2=plan.buffers["v1"])
    with pytest.raises(ValueError, match="overlap"):
        check_plan(g, dataclasses.replace(plan, buffers=bad))


def test_checker_catches_missing_and_out_of_arena_buffers() -> None:
    g = chain([16, 16, 16, 16])
    plan = plan_memory(g)
    with pytest.raises(ValueError, match="no buffer"):
        check_plan(g, dataclasses.replace(plan, buffers={k: v for k, v in plan.buffers.items() if k != "v2"}))
    with pytest.raises(ValueError, match="outside the arena"):
        check_plan(g, dataclasses.replace(plan, arena_bytes=8))


def test_elementwise_ops_run_in_place_when_their_input_dies() -> None:
    g = chain([16, 64, 64, 64, 64, 8], op="QLut")
    g.nodes[0].op = g.nodes[-1].op = "QMaxPool"
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.roots["v3"] == plan.roots["v2"] == "v1"
    assert plan.arena_bytes == 64
    assert plan_memory(g, in_place=False).arena_bytes == 128


def test_no_in_place_over_a_value_read_later_or_over_the_input() -> None:
    g = chain([16, 16, 16], op="QLut")
    g.values["v3"] = Value("v3", (1, 16), "int8")
    g.nodes.append(Node("QAdd", ["v1", "v2"], ["v3"]))
    g.outputs = ["v3"]
    plan = plan_memory(g, io_external=False)
    check_plan(g, plan)
    assert plan.roots["v1"] == "v1"  # the graph input is never overwritten
    assert plan.roots["v2"] == "v2"  # v1 is still read by the add
    assert plan.roots["v3"] == "v1"  # the add may overwrite either operand: both die there


def test_checker_catches_an_unsafe_in_place_write() -> None:
    g = chain([16, 16, 16], op="QLut")
    g.values["v3"] = Value("v3", (1, 16), "int8")
    g.nodes.append(Node("QAdd", ["v1", "v2"], ["v3"]))
    plan = plan_memory(g, in_place=False)
    bad = dataclasses.replace(plan, roots=dict(plan.roots, v2="v1"), buffers=dict(plan.buffers, v2=plan.buffers["v1"]))
    with pytest.raises(ValueError, match="overwrites 'v1' in place"):
        check_plan(g, bad)
    bad = dataclasses.replace(plan, roots=dict(plan.roots, v1="v0"))
    with pytest.raises(ValueError, match="cannot write 'v1' over the storage of 'v0'"):
        check_plan(g, bad)
