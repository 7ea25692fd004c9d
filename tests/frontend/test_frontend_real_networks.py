"""Issue 12 ("real networks"): hard-swish in every exported form, products of two activations,
--input-shape, old opsets (Sum, Transpose, LRN, attribute axes, IR-3 files, ConstantOfShape
weights) and the onnx wheel's `light` zoo models."""
from __future__ import annotations

import io
import json
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from pqc.cli import main
from pqc.errors import ModelError, PqcError
from pqc.executor import FloatExecutor
from pqc.frontend import load_onnx
from onnx_builder import make_model

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT_MODELS = sorted(f for f in os.listdir(LIGHT_DIR) if f.endswith(".onnx")) if os.path.isdir(LIGHT_DIR) else []


def torch_export(module: torch.nn.Module, shape: tuple[int, ...], opset: int) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), torch.randn(*shape), buffer, opset_version=opset, dynamo=False)
    return buffer.getvalue()


def assert_matches_onnxruntime(model: bytes | onnx.ModelProto, graph=None, seed: int = 0) -> None:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    graph = graph or load_onnx(data)
    x = np.random.RandomState(seed).randn(*graph.values[graph.inputs[0]].shape).astype(np.float32) * 4
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    got = FloatExecutor(graph).run(x)[graph.outputs[0]]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


class Lambda(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.conv, self.fn = torch.nn.Conv2d(2, 3, 1), fn

    def forward(self, x):
        return self.fn(self.conv(x))


# --------------------------------------------------------------------------- hard-swish forms
HARD_SWISH_FORMS = {
    "nn.Hardswish": F.hardswish,
    "x*relu6(x+3)/6": lambda x: x * F.relu6(x + 3) / 6,
    "x*(relu6(x+3)/6)": lambda x: x * (F.relu6(x + 3) / 6),
    "x*clamp(x+3,0,6)*(1/6)": lambda x: x * torch.clamp(x + 3, 0, 6) * (1 / 6),
    "(3+x).clamp(0,6)/6*x": lambda x: torch.clamp(3 + x, 0, 6) / 6 * x,
    "x*hardsigmoid(x)": lambda x: x * F.hardsigmoid(x),
}


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("form", sorted(HARD_SWISH_FORMS))
def test_every_exported_hard_swish_form_imports_as_hard_swish(form, opset):
    data = torch_export(Lambda(HARD_SWISH_FORMS[form]), (1, 2, 4, 4), opset)
    graph = load_onnx(data)
    assert [n.op for n in graph.nodes] == ["Conv", "HardSwish"], form
    assert_matches_onnxruntime(data, graph)


def test_hard_swish_with_clip_attributes_at_opset_10():
    nodes = [helper.make_node("Add", ["x", "three"], ["p"]), helper.make_node("Clip", ["p"], ["r"], min=0.0, max=6.0),
             helper.make_node("Mul", ["x", "r"], ["m"]), helper.make_node("Div", ["m", "six"], ["y"])]
    model = make_model(nodes, [("x", [1, 3])], [("y", [1, 3])], {"three": np.float32(3), "six": np.float32(6)}, opset=10)
    graph = load_onnx(model)
    assert [n.op for n in graph.nodes] == ["HardSwish"]
    assert_matches_onnxruntime(model, graph)


@pytest.mark.parametrize("fn", [lambda x: x * F.relu6(x + 3) / 5, lambda x: x * F.relu6(x + 2) / 6,
                                lambda x: torch.relu(x) * F.hardsigmoid(x)], ids=["divisor5", "plus2", "other_x"])
def test_near_misses_stay_products_and_compute_the_same(fn):
    data = torch_export(Lambda(fn), (1, 2, 4, 4), 13)
    graph = load_onnx(data)
    assert "HardSwish" not in [n.op for n in graph.nodes]
    assert_matches_onnxruntime(data, graph)


# --------------------------------------------------------------------------- squeeze-excite
def test_squeeze_excite_imports_and_runs_as_a_product_of_two_activations(se_model, tmp_path, capsys):
    graph = load_onnx(se_model)
    mul = next(n for n in graph.nodes if n.op == "Mul")
    assert not any(graph.values[i].is_const for i in mul.inputs)
    assert_matches_onnxruntime(se_model.read_bytes(), graph)
    np.savez(tmp_path / "x.npz", x=np.random.rand(1, 1, 8, 8).astype(np.float32))
    assert main(["inspect", str(se_model)]) == 0
    assert main(["run", str(se_model), "--inputs", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")]) == 0


# --------------------------------------------------------------------------- --input-shape
def dynamic_conv_model() -> onnx.ModelProto:
    node = helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])
    return make_model([node], [("x", ["N", 3, "H", "W"])], [("y", ["N", 2, "H", "W"])],
                      {"W": np.ones((2, 3, 3, 3), np.float32)})


def test_input_shapes_fix_dynamic_dims():
    graph = load_onnx(dynamic_conv_model(), input_shapes={"x": (2, 3, 48, 192)})
    assert graph.values["y"].shape == (2, 2, 48, 192) and not graph.dynamic_batch
    with pytest.raises(ModelError, match="dynamic dimension .'H'. at axis 2.*--input-shape x:"):
        load_onnx(dynamic_conv_model())


@pytest.mark.parametrize("shapes, message", [
    ({"y": (1, 3, 4, 4)}, "'y', which is not a graph input; the inputs are: x"),
    ({"x": (1, 3, 4)}, "has rank 3; the input has rank 4"),
    ({"x": (1, 3, 0, 4)}, "every dim must be a positive integer"),
    ({"x": (1, 4, 8, 8)}, "contradicts its static dim 3 at axis 1"),
])
def test_bad_input_shapes_are_refused(shapes, message):
    with pytest.raises(ModelError, match=message):
        load_onnx(dynamic_conv_model(), input_shapes=shapes)


def test_cli_input_shape_flag(tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    onnx.save(dynamic_conv_model(), path)
    assert main(["inspect", str(path), "--input-shape", "x:1x3x48x192", "--json"]) == 0
    assert "48" in capsys.readouterr().out
    np.savez(tmp_path / "x.npz", x=np.ones((1, 3, 6, 5), np.float32))
    assert main(["run", str(path), "--input-shape", "x:1x3x6x5", "--inputs", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")]) == 0
    assert np.load(tmp_path / "y.npz")["y"].shape == (1, 2, 6, 5)
    capsys.readouterr()
    for bad in ("x:1x3xAx5", "1x3x6x5", "x:1x3x6x5x1"):
        assert main(["inspect", str(path), "--input-shape", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pqc: error:") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("command", ["compile", "prune", "train"])
def test_every_onnx_command_takes_input_shape(command):
    from pqc.cli import build_parser

    extra = {"compile": ["-o", "b"], "prune": ["--flops", "0.5", "--train", "t", "-o", "p.onnx"], "train": ["--data", "d", "-o", "t.onnx"]}
    args = build_parser().parse_args([command, "m.onnx", "--input-shape", "x:1x3x4x4", "--input-shape", "y:1x2", *extra[command]])
    assert args.input_shape == ["x:1x3x4x4", "y:1x2"]


def test_input_shape_spec_parsing():
    from pqc.frontend import parse_input_shape

    assert parse_input_shape("a:b:1x3X4") == ("a:b", (1, 3, 4))
    with pytest.raises(PqcError, match="is not NAME:DIMS"):
        parse_input_shape(":1x2")


# --------------------------------------------------------------------------- old opsets and ops
def test_sum_becomes_an_add_chain():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sum", ["x", "a", "c", "a"], ["y"], name="s")]
    model = make_model(nodes, [("x", [1, 2, 3])], [("y", [1, 2, 3])], {"c": np.arange(3, dtype=np.float32)}, opset=8)
    graph = load_onnx(model)
    assert [n.op for n in graph.nodes] == ["Relu", "Add", "Add", "Add"] and graph.nodes[-1].name == "s"
    assert_matches_onnxruntime(model, graph)
    single = load_onnx(make_model([helper.make_node("Sum", ["x"], ["y"])], [("x", [1, 2])], [("y", [1, 2])]))
    assert [n.op for n in single.nodes] == ["Identity"]


def test_transpose_is_a_float_op_and_folds_on_constants():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["c"], ["ct"]), helper.make_node("Add", ["t", "ct"], ["y"])]
    model = make_model(nodes, [("x", [1, 2, 3, 4])], [("y", [1, 3, 2, 4])],
                       {"c": np.arange(24, dtype=np.float32).reshape(4, 2, 3, 1)}, opset=9)
    graph = load_onnx(model)
    assert [n.op for n in graph.nodes] == ["Transpose", "Add"]
    assert_matches_onnxruntime(model, graph)
    from pqc.exporter import to_onnx

    assert "Transpose" in [n.op_type for n in to_onnx(graph).graph.node]


def test_transpose_of_the_dynamic_batch_axis_is_refused():
    model = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0], name="t")], [("x", ["N", 2])], [("y", [2, "N"])])
    with pytest.raises(ModelError, match=r"node 't' \(Transpose\).*axis 0"):
        load_onnx(model)


@pytest.mark.parametrize("size", [3, 4])
def test_lrn_follows_the_onnx_formula(size):
    """Checked against the spec's formula in numpy (onnxruntime refuses even windows, and onnx's
    reference evaluator gets LRN wrong), and against onnxruntime for the odd window."""
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.3, beta=0.75, bias=2.0)
    model = make_model([node], [("x", [1, 5, 3, 3])], [("y", [1, 5, 3, 3])], opset=9)
    x = np.random.RandomState(0).randn(1, 5, 3, 3).astype(np.float32)
    padded = np.pad(x * x, ((0, 0), ((size - 1) // 2, size // 2), (0, 0), (0, 0)))
    window_sum = sum(padded[:, k:k + 5] for k in range(size))
    expected = x / (2.0 + 0.3 / size * window_sum) ** 0.75
    np.testing.assert_allclose(FloatExecutor(load_onnx(model)).run(x)["y"], expected, rtol=1e-5, atol=1e-6)
    if size % 2:
        assert_matches_onnxruntime(model)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax"])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_reductions_with_attribute_or_input_axes(op, opset):
    attribute_axes = opset < (13 if op == "ReduceSum" else 18)
    inputs = ["x"] if attribute_axes else ["x", "axes"]
    node = helper.make_node(op, inputs, ["y"], keepdims=0, **({"axes": [-1, 2]} if attribute_axes else {}))
    model = make_model([node], [("x", [1, 2, 3, 4])], [("y", [1, 2])], {} if attribute_axes else {"axes": np.array([-1, 2])}, opset=opset)
    graph = load_onnx(model)
    assert graph.nodes[0].op == op and graph.nodes[0].attrs["axes"] == (2, 3)
    assert_matches_onnxruntime(model, graph)


def test_opset_11_unsqueeze_of_a_constant_folds():
    nodes = [helper.make_node("Unsqueeze", ["c"], ["cu"], axes=[1, 2]), helper.make_node("Mul", ["x", "cu"], ["y"])]
    model = make_model(nodes, [("x", [1, 3, 2, 2])], [("y", [1, 3, 2, 2])], {"c": np.array([1, 2, 3], np.float32)}, opset=11)
    graph = load_onnx(model)
    assert [n.op for n in graph.nodes] == ["Mul"] and graph.values[graph.nodes[0].inputs[1]].shape == (3, 1, 1)


def test_ir3_initializers_listed_as_inputs_and_constant_of_shape_weights():
    shape = helper.make_tensor("W_shape", TensorProto.INT64, [4], [2, 3, 3, 3])
    nodes = [helper.make_node("ConstantOfShape", ["W_shape"], ["W"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
             helper.make_node("Conv", ["x", "W", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("W_shape", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [numpy_helper.from_array(np.array([1, -1], np.float32), "b"), shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    imported = load_onnx(model)
    assert imported.inputs == ["x"] and [n.op for n in imported.nodes] == ["Conv"]
    assert_matches_onnxruntime(model, imported)


# --------------------------------------------------------------------------- the light zoo models
#: What each `light` model of the onnx wheel imports as (all of them import today).
LIGHT_OPS = {
    "light_bvlc_alexnet.onnx": {"LRN", "Gemm", "Softmax"},
    "light_densenet121.onnx": {"Concat", "Mul", "GlobalAveragePool"},
    "light_inception_v1.onnx": {"LRN", "Concat", "AveragePool"},
    "light_inception_v2.onnx": {"Concat", "Mul", "AveragePool"},
    "light_resnet50.onnx": {"Add", "BatchNormalization"},
    "light_shufflenet.onnx": {"Transpose", "Reshape", "Add"},
    "light_squeezenet.onnx": {"Concat", "GlobalAveragePool"},
    "light_vgg19.onnx": {"Gemm", "MaxPool"},
    "light_zfnet512.onnx": {"LRN", "Gemm"},
}


@pytest.mark.slow
@pytest.mark.skipif(not LIGHT_MODELS, reason="this onnx wheel ships no light models")
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_zoo_model_imports_or_is_refused_clearly(name):
    path = os.path.join(LIGHT_DIR, name)
    try:
        graph = load_onnx(path)
    except PqcError as exc:  # a refusal must name the node and its op
        assert name not in LIGHT_OPS, f"{name} used to import: {exc}"
        assert str(exc).startswith("node "), exc
        return
    assert LIGHT_OPS.get(name, set()) <= {n.op for n in graph.nodes}
    if name == "light_squeezenet.onnx":  # small enough to run against onnxruntime here
        assert_matches_onnxruntime(open(path, "rb").read(), graph)


@pytest.mark.slow
@pytest.mark.skipif("light_squeezenet.onnx" not in LIGHT_MODELS, reason="this onnx wheel ships no light models")
def test_light_squeezenet_and_shufflenet_compile(tmp_path):
    """Issue 12: the light models without LRN should compile. SqueezeNet and ShuffleNet do (W8A8,
    on random images); ShuffleNet's 16 channel shuffles (Reshape, Transpose, Reshape) become
    integer channel permutations (QPermute)."""
    def compile_light(name: str) -> int:
        path = os.path.join(LIGHT_DIR, f"light_{name}.onnx")
        graph = load_onnx(path)
        shape = graph.values[graph.inputs[0]].shape[1:]
        np.savez(tmp_path / f"{name}.npz", **{graph.inputs[0]: np.random.default_rng(0).normal(
            0, 1, (4, *shape)).astype(np.float32)})
        return main(["compile", path, "-o", str(tmp_path / name), "--calib", str(tmp_path / f"{name}.npz"),
                     "--no-verify", "-q"])

    assert compile_light("squeezenet") == 0
    assert (tmp_path / "squeezenet" / "model.c").stat().st_size > 0
    assert compile_light("shufflenet") == 0
    report = json.loads((tmp_path / "shufflenet" / "report.json").read_text())
    assert sum(layer["op"] == "QPermute" for layer in report["layers"]) == 16
