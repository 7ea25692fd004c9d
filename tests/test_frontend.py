"""The ONNX frontend: what it refuses (with a message naming the culprit) and what it imports."""
from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnx_builder import make_model

from pqc.errors import ModelError
from pqc.executor import FloatExecutor
from pqc.frontend import MAX_OPSET, SUPPORTED_ONNX_OPS, load_onnx

torch.set_num_threads(1)


# --------------------------------------------------------------------------- model builders
def conv_model(weight: np.ndarray | None = None, x_shape=(1, 2, 5, 5)) -> onnx.ModelProto:
    weight = np.ones((3, 2, 3, 3), np.float32) if weight is None else weight
    return make_model(
        [helper.make_node("Conv", ["x", "W"], ["y"], name="conv1", pads=[1, 1, 1, 1])],
        [("x", list(x_shape))], [("y", [x_shape[0], 3, 5, 5])], {"W": weight},
    )


def run_both(model_bytes: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime output, pqc float executor output) of a one-input model on ``x``."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    graph = load_onnx(model_bytes)
    return expected, FloatExecutor(graph).run(x)[graph.outputs[0]]


# --------------------------------------------------------------------------- malformed files
def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_onnx(tmp_path / "nope.onnx")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_onnx(path)


def test_truncated_file_is_refused(tmp_path):
    data = conv_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        load_onnx(path)


def test_random_bytes_are_refused():
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_onnx(np.random.RandomState(0).bytes(4096))


def test_good_model_loads_from_path_bytes_and_proto(tmp_path):
    model = conv_model()
    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    for src in (path, str(path), model.SerializeToString(), model):
        graph = load_onnx(src)
        assert [n.op for n in graph.nodes] == ["Conv"]
        assert graph.values["y"].shape == (1, 3, 5, 5)
    assert load_onnx(path).name == "conv"
    assert load_onnx(model, name="mine").name == "mine"


def test_external_weights_load_from_path_but_not_from_bytes(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save_model(conv_model(), path, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").exists()
    assert load_onnx(path).values["W"].data.shape == (3, 2, 3, 3)
    with pytest.raises(ModelError, match="initializer 'W' is stored in an external data file"):
        load_onnx(path.read_bytes())


# --------------------------------------------------------------------------- refused content
def test_unsupported_op_names_node_op_and_supported_list():
    model = make_model([helper.make_node("Tanh", ["x"], ["y"], name="my_tanh")], [("x", [1, 4])], [("y", [1, 4])])
    with pytest.raises(ModelError) as err:
        load_onnx(model)
    message = str(err.value)
    assert "'my_tanh'" in message and "Tanh is not supported" in message
    assert "Conv" in message and "MaxPool" in message


def test_dynamic_spatial_dims_are_refused():
    model = conv_model(x_shape=("N", 2, "H", "W"))
    with pytest.raises(ModelError, match=r"dynamic dimension \('H'\) at axis 2"):
        load_onnx(model)


def test_training_mode_batchnorm_is_refused():
    stats = {k: np.ones(2, np.float32) for k in ("s", "b", "m", "v")}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "mean", "var"], name="bn", training_mode=1)
    model = make_model([node], [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])], stats, opset=15)
    with pytest.raises(ModelError, match="'bn' .BatchNormalization.: training-mode"):
        load_onnx(model)


def test_missing_initializer_is_refused():
    model = conv_model()
    del model.graph.initializer[:]
    with pytest.raises(ModelError, match="'conv1' .Conv. reads 'W'.*missing initializer"):
        load_onnx(model)


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_non_finite_weights_are_refused(bad, word):
    weight = np.ones((3, 2, 3, 3), np.float32)
    weight[1, 0, 2, 2] = bad
    with pytest.raises(ModelError, match=f"initializer 'W' contains {word}"):
        load_onnx(conv_model(weight))


def test_float64_input_is_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4], TensorProto.DOUBLE)], [("y", [1, 4], TensorProto.DOUBLE)])
    with pytest.raises(ModelError, match="graph input 'x' has dtype float64; pqc's float IR is float32 only"):
        load_onnx(model)


def test_opset_out_of_range_is_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4])], [("y", [1, 4])], opset=MAX_OPSET + 1)
    with pytest.raises(ModelError, match=f"opset {MAX_OPSET + 1}"):
        load_onnx(model)


def test_custom_domain_is_refused():
    model = make_model([helper.make_node("Gelu", ["x"], ["y"], name="g1", domain="com.microsoft")], [("x", [1, 4])], [("y", [1, 4])])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(ModelError, match="'g1' .com.microsoft::Gelu. is from a custom domain"):
        load_onnx(model)


def test_mul_of_two_activations_imports_lowering_decides():
    model = make_model([helper.make_node("Mul", ["x", "x"], ["y"], name="sq")], [("x", [1, 4])], [("y", [1, 4])])
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    expected, got = run_both(model.SerializeToString(), x)
    np.testing.assert_allclose(got, expected)


def test_weight_computed_at_run_time_is_refused():
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c")], [("x", [1, 1, 3, 3]), ("w", [1, 1, 1, 1])], [("y", [1, 1, 3, 3])]
    )
    with pytest.raises(ModelError, match=r"'c' \(Conv\): operand 1 \('w'\) must be a constant"):
        load_onnx(model)


# --------------------------------------------------------------------------- normalization
def test_constant_fed_clip_and_reshape_become_attributes():
    const = lambda name, value: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name)
    )
    nodes = [
        const("lo", np.float32(0.0)), const("hi", np.float32(6.0)), const("shape", np.array([1, -1], np.int64)),
        helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="relu6"),
        helper.make_node("Reshape", ["c", "shape"], ["y"], name="flat"),
    ]
    graph = load_onnx(make_model(nodes, [("x", [1, 2, 3, 3])], [("y", [1, 18])]))
    assert [n.op for n in graph.nodes] == ["Clip", "Reshape"]
    clip, flat = graph.nodes
    assert clip.inputs == ["x"] and clip.attrs == {"min": 0.0, "max": 6.0}
    assert flat.inputs == ["c"] and flat.attrs == {"shape": (1, 18), "keep_batch": True}


def test_constant_first_mul_is_normalized_and_axes_are_non_negative():
    nodes = [
        helper.make_node("Mul", ["k", "x"], ["m"], name="scale"),
        helper.make_node("Softmax", ["m"], ["y"], name="sm", axis=-1),
    ]
    graph = load_onnx(make_model(nodes, [("x", [1, 4])], [("y", [1, 4])], {"k": np.full(4, 2, np.float32)}))
    assert graph.nodes[0].inputs == ["x", "k"]
    assert graph.nodes[1].attrs == {"axis": 1, "coerce_2d": False}


def test_same_upper_auto_pad_is_resolved_to_explicit_pads():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    graph = load_onnx(make_model([node], [("x", [1, 1, 6, 6])], [("y", [1, 1, 3, 3])]))
    assert graph.nodes[0].attrs["pads"] == (0, 0, 1, 1)
    assert graph.values["y"].shape == (1, 1, 3, 3)


def test_1d_conv_runs_as_2d_on_a_unit_height_view():
    weight = np.random.RandomState(0).randn(4, 2, 3).astype(np.float32)
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="c1d", pads=[2, 0], strides=[2])
    model = make_model([node], [("x", ["N", 2, 9])], [("y", ["N", 4, 5])], {"W": weight})
    graph = load_onnx(model)
    assert [n.op for n in graph.nodes] == ["Unsqueeze", "Conv", "Squeeze"]
    conv = graph.nodes[1]
    assert conv.name == "c1d" and graph.values[conv.inputs[1]].shape == (4, 2, 1, 3)
    assert conv.attrs["kernel_shape"] == (1, 3) and conv.attrs["pads"] == (0, 2, 0, 0) and conv.attrs["strides"] == (1, 2)
    x = np.random.RandomState(1).randn(3, 2, 9).astype(np.float32)
    expected, got = run_both(model.SerializeToString(), x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_duplicate_and_empty_node_names_are_made_unique():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Relu", ["a"], ["b"], name="r"),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = load_onnx(make_model(nodes, [("x", [1, 4])], [("y", [1, 4])]))
    assert [n.name for n in graph.nodes] == ["r", "r_1", "Relu_y"]


def test_supported_ops_are_sorted_and_complete():
    assert SUPPORTED_ONNX_OPS == sorted(SUPPORTED_ONNX_OPS)
    assert {"Conv", "BatchNormalization", "Gemm", "Reshape", "Constant", "Shape"} <= set(SUPPORTED_ONNX_OPS)


# --------------------------------------------------------------------------- torch exports
class SmallCnn(torch.nn.Module):
    """Conv-BN-ReLU6, max pool, depthwise Conv-BN-ReLU, global pool, ``view(x.size(0), -1)``, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.conv2, self.bn2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)
        for bn in (self.bn1, self.bn2):
            torch.nn.init.uniform_(bn.running_mean, -1, 1)
            torch.nn.init.uniform_(bn.running_var, 0.5, 2)

    def forward(self, x):
        x = torch.nn.functional.relu6(self.bn1(self.conv1(x)))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


@pytest.fixture(scope="module")
def small_cnn() -> SmallCnn:
    torch.manual_seed(0)
    return SmallCnn().eval()


@pytest.fixture(scope="module")
def legacy_export(small_cnn) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(
        small_cnn, (torch.zeros(2, 3, 16, 16),), buffer, dynamo=False, opset_version=13, do_constant_folding=False,
        input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )
    return buffer.getvalue()


def test_legacy_export_keeps_bn_resolves_view_flatten_and_matches_onnxruntime(legacy_export):
    ops = {n.op_type for n in onnx.load_from_string(legacy_export).graph.node}
    assert {"Shape", "Gather", "Constant"} <= ops  # the view(x.size(0), -1) chain really is there
    graph = load_onnx(legacy_export)
    assert graph.dynamic_batch and graph.values["input"].shape == (1, 3, 16, 16)
    assert [n.op for n in graph.nodes] == [
        "Conv", "BatchNormalization", "Clip", "MaxPool", "Conv", "BatchNormalization", "Relu", "GlobalAveragePool",
        "Reshape", "Gemm",
    ]
    reshape = graph.nodes[8]
    assert reshape.attrs == {"shape": (1, 8), "keep_batch": True}
    x = np.random.RandomState(1).randn(3, 3, 16, 16).astype(np.float32)  # batch 3 through a batch-1 import
    expected, got = run_both(legacy_export, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_new_exporter_output_matches_onnxruntime(small_cnn):
    buffer = io.BytesIO()
    torch.onnx.export(
        small_cnn, (torch.zeros(2, 3, 16, 16),), buffer, dynamo=True, external_data=False,
        input_names=["input"], output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("N")}},
    )
    data = buffer.getvalue()
    graph = load_onnx(data)
    assert graph.dynamic_batch
    assert "ReduceMean" in [n.op for n in graph.nodes]
    x = np.random.RandomState(2).randn(2, 3, 16, 16).astype(np.float32)
    expected, got = run_both(data, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_legacy_hardswish_pattern_becomes_hardswish():
    """torch before opset 14 writes Hardswish as x * HardSigmoid(x, alpha=1/6): a product of two
    activations that pqc would refuse if it did not recognize the pattern."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Hardswish(), torch.nn.Conv2d(4, 2, 1)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.zeros(1, 3, 8, 8),), buffer, dynamo=False, opset_version=13)
    assert {"HardSigmoid", "Mul"} <= {n.op_type for n in onnx.load_from_string(buffer.getvalue()).graph.node}
    graph = load_onnx(buffer.getvalue())
    assert [n.op for n in graph.nodes] == ["Conv", "HardSwish", "Conv"]
    x = np.random.RandomState(3).randn(1, 3, 8, 8).astype(np.float32) * 4
    expected, got = run_both(buffer.getvalue(), x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_static_batch_export_is_not_dynamic(small_cnn):
    buffer = io.BytesIO()
    torch.onnx.export(small_cnn, (torch.zeros(2, 3, 8, 8),), buffer, dynamo=False, opset_version=13)
    graph = load_onnx(buffer.getvalue())
    assert not graph.dynamic_batch and graph.values[graph.inputs[0]].shape == (2, 3, 8, 8)


@pytest.mark.parametrize("node, out_shape", [
    (helper.make_node("Squeeze", ["x"], ["y"], name="sq"), [4]),
    (helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=0), [1, 4]),
    (helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=0), ["N", 4, 1, 1]),
    (helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=0), ["M", 4, 1, 1]),
])
def test_ops_on_the_batch_axis_are_refused_with_dynamic_batch(node, out_shape):
    model = make_model([node], [("x", ["N", 4, 1, 1])], [("y", out_shape)])
    with pytest.raises(ModelError, match=f"'{node.name}' .{node.op_type}.: .*batch axis 0 of a dynamic-batch model"):
        load_onnx(model)
    static = make_model([node], [("x", [1, 4, 1, 1])], [("y", out_shape)])
    assert load_onnx(static).nodes[0].op == node.op_type


def test_reshape_dropping_the_batch_dim_is_refused_with_dynamic_batch():
    shape = np.array([-1], np.int64)
    node = helper.make_node("Reshape", ["x", "s"], ["y"], name="to_vector")
    model = make_model([node], [("x", ["N", 4])], [("y", ["M"])], {"s": shape})
    with pytest.raises(ModelError, match="'to_vector' .Reshape.: .*batch"):
        load_onnx(model)
