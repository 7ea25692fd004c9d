"""The ONNX exporter: a valid model with a symbolic batch, and random graphs agreeing with onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir_builder import GraphBuilder, assert_matches_onnxruntime, conv_attrs
from pqc.errors import ModelError
from pqc.exporter import save_onnx, to_onnx


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def conv_relu_graph(dynamic_batch: bool):
    rng = np.random.default_rng(2)
    b = GraphBuilder("conv_relu", dynamic_batch=dynamic_batch)
    x = b.input("x", (2, 3, 5, 5))
    y = b.op("Conv", [x, b.const("w", rand(rng, 4, 3, 3, 3))], **conv_attrs(), act="relu")
    return b.build(y)


def dims(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("dynamic_batch, batch_dim", [(True, "N"), (False, 2)])
def test_batch_dim_is_symbolic_only_for_dynamic_batch(dynamic_batch: bool, batch_dim) -> None:
    model = to_onnx(conv_relu_graph(dynamic_batch))
    onnx.checker.check_model(model, full_check=True)
    assert dims(model.graph.input[0]) == [batch_dim, 3, 5, 5]
    assert dims(model.graph.output[0]) == [batch_dim, 4, 5, 5]
    assert [i.name for i in model.graph.initializer] == ["w"]
    assert model.opset_import[0].version == 13


def test_save_onnx_writes_a_checkable_file(tmp_path) -> None:
    path = tmp_path / "model.onnx"
    graph = conv_relu_graph(True)
    save_onnx(graph, path, opset=17)
    onnx.checker.check_model(str(path), full_check=True)
    assert onnx.load(str(path)).opset_import[0].version == 17


@pytest.mark.parametrize("opset", [11, 22])
def test_unsupported_opset_is_refused(opset: int) -> None:
    with pytest.raises(ModelError, match=f"opset {opset}"):
        to_onnx(conv_relu_graph(True), opset)


def test_export_leaves_the_graph_untouched() -> None:
    graph = conv_relu_graph(True)
    before = str(graph)
    to_onnx(graph)
    assert str(graph) == before


# ----------------------------------------------------------------------------- random graphs
@st.composite
def random_cnns(draw):
    """A random small CNN: a stack of convs (groups, strides, asymmetric pads, dilations), pools,
    residual adds and channel concats, then global pooling and a Gemm head; with its feeds."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dynamic = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    channels = draw(st.sampled_from([2, 3, 4]))
    b = GraphBuilder("random_cnn", dynamic_batch=dynamic)
    x = b.input("x", (1 if dynamic else batch, channels, draw(st.integers(6, 10)), draw(st.integers(6, 10))))
    for _ in range(draw(st.integers(1, 4))):
        c, h, w = b.graph.values[x].shape[1:]
        kind = draw(st.sampled_from(["conv", "maxpool", "avgpool", "residual", "concat"]))
        if kind == "conv":
            group = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
            k = draw(st.integers(1, min(3, h, w)))
            dilation = draw(st.sampled_from([1, 2])) if 2 * (k - 1) + 1 <= min(h, w) else 1
            pads = tuple(draw(st.integers(0, k - 1)) for _ in range(4))
            cout = group * draw(st.integers(1, 2))
            wt, bias = b.const("w", rand(rng, cout, c // group, k, k)), b.const("b", rand(rng, cout))
            act = draw(st.sampled_from([None, "relu", ("clip", 0.0, 6.0)]))
            x = b.op("Conv", [x, wt, bias], **conv_attrs(k, draw(st.integers(1, 2)), pads, group, dilation), act=act)
        elif kind in ("maxpool", "avgpool"):
            k = draw(st.integers(1, min(3, h, w)))
            attrs = dict(kernel_shape=(k, k), strides=(draw(st.integers(1, 2)),) * 2,
                         pads=tuple(draw(st.integers(0, k - 1)) for _ in range(4)), ceil_mode=draw(st.integers(0, 1)))
            if kind == "maxpool":
                x = b.op("MaxPool", [x], dilations=(1, 1), **attrs)
            else:
                x = b.op("AveragePool", [x], count_include_pad=draw(st.integers(0, 1)), **attrs)
        elif kind == "residual":
            branch = b.op("Conv", [x, b.const("w", rand(rng, c, c, 3, 3))], **conv_attrs())
            x = b.op("Add", [x, branch], act=draw(st.sampled_from([None, "relu"])))
        else:
            x = b.op("Concat", [x, b.op("Relu", [x])], axis=1)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    c = b.graph.values[x].shape[1]
    y = b.op("Gemm", [x, b.const("fc", rand(rng, 5, c)), b.const("fc_b", rand(rng, 5))],
             alpha=draw(st.sampled_from([1.0, 0.5])), beta=1.0, transA=0, transB=1)
    return b.build(y), {"x": rand(rng, batch, *b.graph.values["x"].shape[1:])}


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(random_cnns())
def test_random_graphs_match_onnxruntime(case) -> None:
    graph, feeds = case
    assert_matches_onnxruntime(graph, feeds, atol=1e-4)


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_fused_activation_graph_matches_onnxruntime_across_opsets(opset: int) -> None:
    feeds = {"x": rand(np.random.default_rng(3), 3, 3, 5, 5)}
    assert_matches_onnxruntime(conv_relu_graph(True), feeds, opset=opset)
