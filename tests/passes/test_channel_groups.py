"""Channel groups and physical pruning on hand-built graphs.

Each structural case (residual add, depthwise conv, concat, flatten into Gemm) is pruned and
compared with an independently built reference: the original graph with the dropped channels'
producing weights, biases and BN scale/shift set to zero, listed by hand per test. Both must
give the same network output, and every pruned activation must equal the reference's kept
channels while the reference's dropped channels are zero.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ir_builder import GraphBuilder, conv_attrs
from pqc.errors import PqcError
from pqc.executor import FloatExecutor
from pqc.ir import Graph
from pqc.passes.adaprune.prune import prune_channels
from pqc.passes.channel_groups import channel_groups

torch.set_num_threads(1)
RNG = np.random.default_rng(3)


def rand(*shape: int) -> np.ndarray:
    return RNG.uniform(-1, 1, size=shape).astype(np.float32)


def conv_bn(b: GraphBuilder, x: str, cin: int, cout: int, name: str, group: int = 1, bias: bool = False) -> str:
    """Conv (named ``<name>.w``/``<name>.b``) then BN (``<name>.g``, ``.beta``, ``.mean``, ``.var``)."""
    inputs = [x, b.const(f"{name}.w", rand(cout, cin // group, 3, 3))]
    if bias:
        inputs.append(b.const(f"{name}.b", rand(cout)))
    y = b.op("Conv", inputs, **conv_attrs(group=group))
    params = [b.const(f"{name}.{k}", v) for k, v in (
        ("g", RNG.uniform(0.5, 1.5, cout).astype(np.float32)), ("beta", rand(cout)),
        ("mean", rand(cout) * 0.1), ("var", RNG.uniform(0.5, 2, cout).astype(np.float32)))]
    return b.op("BatchNormalization", [y, *params], epsilon=1e-5, momentum=0.9)


def head(b: GraphBuilder, x: str, cin: int, classes: int = 4) -> str:
    pooled = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    return b.op("Gemm", [pooled, b.const("fc.w", rand(classes, cin)), b.const("fc.b", rand(classes))],
                alpha=1.0, beta=1.0, transA=0, transB=1)


def zeroed(graph: Graph, cuts: dict[str, tuple[int, list[int]]]) -> Graph:
    """A copy of ``graph`` with constant ``name`` zeroed at ``indices`` along ``axis``."""
    out = graph.copy()
    for name, (axis, indices) in cuts.items():
        data = out.values[name].data.copy()
        index = [slice(None)] * data.ndim
        index[axis] = indices
        data[tuple(index)] = 0
        out.values[name].data = data
    return out


def silence(conv: str, dropped: list[int], bias: bool = False) -> dict[str, tuple[int, list[int]]]:
    """The constants that silence output channels ``dropped`` of a conv_bn block."""
    cuts = {f"{conv}.w": (0, dropped), f"{conv}.g": (0, dropped), f"{conv}.beta": (0, dropped)}
    if bias:
        cuts[f"{conv}.b"] = (0, dropped)
    return cuts


def group_of(graph: Graph, value: str) -> int:
    (segment,) = channel_groups(graph).layouts[value]
    return segment.group


def assert_prunes_like_zeroing(graph: Graph, pruned: Graph, reference: Graph, watch: dict[str, list[int]]) -> None:
    """Same outputs; ``watch`` maps activations to their kept axis-1 indices in the original."""
    pruned.verify()
    x = rand(*graph.values[graph.inputs[0]].shape)
    got = FloatExecutor(pruned).run(x, capture=list(watch))
    want = FloatExecutor(reference).run(x, capture=list(watch))
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
    for name, kept in watch.items():
        np.testing.assert_allclose(got[name], want[name][:, kept], rtol=1e-5, atol=1e-5, err_msg=name)
        dropped = np.setdiff1d(np.arange(want[name].shape[1]), kept)
        assert np.all(want[name][:, dropped] == 0), f"{name}: the reference does not silence the dropped channels"
    before = FloatExecutor(graph).run(x)[graph.outputs[0]]
    assert not np.allclose(before, got[graph.outputs[0]]), "pruning changed nothing: the test would not see a bug"


def test_residual_add_ties_both_operands() -> None:
    b = GraphBuilder("residual")
    x = b.input("x", (2, 3, 6, 6))
    a = b.op("Relu", [conv_bn(b, x, 3, 8, "c1", bias=True)])
    s = b.op("Add", [a, conv_bn(b, a, 8, 8, "c2")])
    y = b.op("Relu", [s])
    graph = b.build(head(b, y, 8))
    gid = group_of(graph, a)
    assert group_of(graph, s) == gid == group_of(graph, y)
    deps = channel_groups(graph)
    assert sorted(name for name, _ in deps.groups[gid].producers) == sorted(
        n.name for n in graph.nodes if n.op == "Conv")
    kept = [0, 2, 5]
    dropped = [1, 3, 4, 6, 7]
    pruned = prune_channels(graph, deps, {gid: np.array(kept)})
    assert pruned.values["fc.w"].shape == (4, 3) and pruned.values["c2.w"].shape == (3, 3, 3, 3)
    reference = zeroed(graph, {**silence("c1", dropped, bias=True), **silence("c2", dropped)})
    assert_prunes_like_zeroing(graph, pruned, reference, {a: kept, s: kept})
    assert str(graph) != str(pruned) and graph.values["c1.w"].shape == (8, 3, 3, 3), "the input graph was modified"


def test_depthwise_conv_shares_its_producers_group() -> None:
    b = GraphBuilder("depthwise")
    x = b.input("x", (2, 3, 6, 6))
    e = b.op("Relu", [conv_bn(b, x, 3, 6, "expand")])
    d = b.op("Relu", [conv_bn(b, e, 6, 6, "dw", group=6)])
    p = conv_bn(b, d, 6, 5, "project")
    graph = b.build(head(b, p, 5))
    gid = group_of(graph, e)
    assert group_of(graph, d) == gid and group_of(graph, p) != gid
    kept, dropped = [1, 2, 4], [0, 3, 5]
    deps = channel_groups(graph)
    pruned = prune_channels(graph, deps, {gid: np.array(kept), group_of(graph, p): np.array([0, 1, 4])})
    dw = next(n for n in pruned.nodes if n.op == "Conv" and n.inputs[1] == "dw.w")
    assert dw.attrs["group"] == 3 and pruned.values["dw.w"].shape == (3, 1, 3, 3)
    cuts = {**silence("expand", dropped), **silence("dw", dropped), **silence("project", [2, 3])}
    assert_prunes_like_zeroing(graph, pruned, zeroed(graph, cuts), {e: kept, d: kept, p: [0, 1, 4]})


def test_concat_maps_groups_by_offset() -> None:
    b = GraphBuilder("concat")
    x = b.input("x", (2, 3, 6, 6))
    left = b.op("Relu", [conv_bn(b, x, 3, 4, "left")])
    right = b.op("Relu", [conv_bn(b, x, 3, 5, "right")])
    cat = b.op("Concat", [left, right], axis=1)
    z = b.op("Relu", [conv_bn(b, cat, 9, 6, "mix")])
    graph = b.build(head(b, z, 6))
    deps = channel_groups(graph)
    layout = deps.layouts[cat]
    assert [s.group for s in layout] == [group_of(graph, left), group_of(graph, right)]
    pruned = prune_channels(graph, deps, {layout[0].group: np.array([1, 3]), layout[1].group: np.array([0, 2, 4])})
    assert pruned.values["mix.w"].shape == (6, 5, 3, 3)
    cuts = {**silence("left", [0, 2]), **silence("right", [1, 3])}
    assert_prunes_like_zeroing(graph, pruned, zeroed(graph, cuts), {cat: [1, 3, 4, 6, 8]})


def test_flatten_into_gemm_expands_channels_to_features() -> None:
    b = GraphBuilder("flatten")
    x = b.input("x", (2, 3, 6, 6))
    c = b.op("Relu", [conv_bn(b, x, 3, 4, "c")])
    f = b.op("Flatten", [b.op("MaxPool", [c], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0),
                                  dilations=(1, 1), ceil_mode=0)], axis=1)
    h = b.op("Gemm", [f, b.const("h.w", rand(5, 36)), b.const("h.b", rand(5))], alpha=1.0, beta=1.0, transA=0, transB=1)
    r = b.op("Relu", [h])
    out = b.op("Gemm", [r, b.const("o.w", rand(3, 5)), b.const("o.b", rand(3))], alpha=1.0, beta=1.0, transA=0, transB=1)
    graph = b.build(out)
    deps = channel_groups(graph)
    (segment,) = deps.layouts[f]
    assert segment.group == group_of(graph, c) and segment.repeat == 9
    pruned = prune_channels(graph, deps, {segment.group: np.array([0, 3]), group_of(graph, h): np.array([1, 2, 4])})
    assert pruned.values["h.w"].shape == (3, 18) and pruned.values["o.w"].shape == (3, 3)
    cuts = {**silence("c", [1, 2]), "h.w": (0, [0, 3]), "h.b": (0, [0, 3])}
    features = [*range(0, 9), *range(27, 36)]
    assert_prunes_like_zeroing(graph, pruned, zeroed(graph, cuts), {f: features, r: [1, 2, 4]})


def test_network_input_output_and_grouped_convs_are_frozen() -> None:
    b = GraphBuilder("frozen")
    x = b.input("x", (1, 4, 6, 6))
    g = conv_bn(b, x, 4, 8, "grouped", group=2)
    graph = b.build(head(b, b.op("Relu", [g]), 8))
    deps = channel_groups(graph)
    assert deps.groups[group_of(graph, x)].frozen == "network input"
    assert "not depthwise" in deps.groups[group_of(graph, g)].frozen
    assert deps.groups[group_of(graph, graph.outputs[0])].frozen == "network output"
    assert deps.prunable() == []
    with pytest.raises(PqcError, match="cannot be pruned"):
        prune_channels(graph, deps, {group_of(graph, g): np.array([0, 1])})


def test_bad_keep_indices_are_refused() -> None:
    b = GraphBuilder("keep")
    x = b.input("x", (1, 3, 6, 6))
    c = b.op("Relu", [conv_bn(b, x, 3, 4, "c")])
    graph = b.build(head(b, c, 4))
    deps = channel_groups(graph)
    for bad in ([], [0, 0], [4]):
        with pytest.raises(PqcError, match="distinct"):
            prune_channels(graph, deps, {group_of(graph, c): np.array(bad, dtype=np.int64)})
