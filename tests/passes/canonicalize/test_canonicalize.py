"""canonicalize: every rewrite keeps the float function (executor before vs after) and verifies."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ir_builder import GraphBuilder, conv_attrs
from pqc.executor import FloatExecutor
from pqc.ir import Graph
from pqc.passes import canonicalize

torch.set_num_threads(1)
RNG = np.random.default_rng(7)


def rand(*shape: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


def canonical_and_equal(graph: Graph, batch: int = 3) -> Graph:
    """canonicalize ``graph``; assert same outputs on random inputs, verify, input untouched."""
    before = str(graph)
    out = canonicalize(graph)
    assert str(graph) == before, "canonicalize mutated its input"
    out.verify()
    assert out.outputs == graph.outputs and out.inputs == graph.inputs
    feeds = {}
    for name in graph.inputs:
        shape = graph.values[name].shape
        feeds[name] = rand(*((batch,) + shape[1:] if graph.dynamic_batch else shape), lo=-2, hi=2)
    want, got = FloatExecutor(graph).run(feeds), FloatExecutor(out).run(feeds)
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4, err_msg=name)
    return out


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def bn_params(b: GraphBuilder, c: int, prefix: str) -> list[str]:
    return [
        b.const(f"{prefix}_scale", rand(c, lo=0.5, hi=1.5)), b.const(f"{prefix}_bias", rand(c)),
        b.const(f"{prefix}_mean", rand(c)), b.const(f"{prefix}_var", rand(c, lo=0.5, hi=2.0)),
    ]


def test_identity_and_dropout_removed_output_name_kept():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 6, 6))
    y = b.op("Identity", [x])
    y = b.op("Conv", [y, b.const("w", rand(4, 2, 3, 3))], **conv_attrs())
    y = b.op("Dropout", [y])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv"]
    assert out.nodes[0].outputs == [y]  # the graph output keeps its name


def test_identity_from_input_to_output_stays():
    b = GraphBuilder()
    x = b.input("x", (1, 3))
    y = b.op("Identity", [x])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Identity"]


def test_constants_folded():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 5, 5))
    w = b.op("Mul", [b.const("w", rand(3, 2, 3, 3)), b.const("two", np.float32(2.0))])
    y = b.op("Conv", [x, w], **conv_attrs())
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv"]
    np.testing.assert_allclose(out.const(out.nodes[0].inputs[1]), 2 * b.graph.const("w"))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("group", [1, 4])
def test_bn_folds_into_conv(bias, group):
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 4, 6, 6))
    args = [x, b.const("w", rand(8, 4 // group, 3, 3))] + ([b.const("b", rand(8))] if bias else [])
    y = b.op("Conv", args, **conv_attrs(group=group))
    y = b.op("BatchNormalization", [y, *bn_params(b, 8, "bn")], epsilon=1e-3, momentum=0.9)
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv"]
    np.testing.assert_array_equal(out.nodes[0].meta["bn_scale"], b.graph.const("bn_scale"))


def test_bn_folds_into_gemm_and_relu_fuses():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 6))
    y = b.op("Gemm", [x, b.const("w", rand(6, 5)), b.const("c", rand(5))], alpha=1.0, beta=1.0, transA=0, transB=0)
    y = b.op("BatchNormalization", [y, *bn_params(b, 5, "bn")], epsilon=1e-5, momentum=0.9)
    y = b.op("Relu", [y])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Gemm"]
    gemm = out.nodes[0]
    assert gemm.attrs["transB"] == 1 and gemm.attrs["act"] == "relu" and out.values[gemm.inputs[1]].shape == (5, 6)


def test_bn_without_conv_becomes_mul_add():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 3, 4, 4))
    y = b.op("BatchNormalization", [x, *bn_params(b, 3, "bn")], epsilon=1e-5, momentum=0.9)
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Mul", "Add"]
    assert out.values[out.nodes[0].inputs[1]].shape == (3, 1, 1)


def test_bn_after_conv_with_two_readers_is_not_folded():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 5, 5))
    c = b.op("Conv", [x, b.const("w", rand(2, 2, 3, 3))], **conv_attrs())
    y = b.op("BatchNormalization", [c, *bn_params(b, 2, "bn")], epsilon=1e-5, momentum=0.9)
    y = b.op("Add", [y, c])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv", "Mul", "Add", "Add"]


def test_sub_div_become_add_mul_with_constant_second():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 3, 4, 4))
    y = b.op("Sub", [x, b.const("m", rand(3, 1, 1))])
    y = b.op("Div", [y, b.const("s", rand(3, 1, 1, lo=0.5, hi=2.0))])
    y = b.op("Add", [b.const("k", rand(3, 1, 1)), y])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Add", "Mul", "Add"]
    assert all(out.values[n.inputs[1]].is_const for n in out.nodes)


@pytest.mark.parametrize("act,expected", [
    ({"op": "Relu"}, "relu"),
    ({"op": "Clip", "min": 0.0, "max": 6.0}, ("clip", 0.0, 6.0)),
    ({"op": "Clip", "min": 0.0, "max": None}, "relu"),
])
def test_activation_fuses_into_conv(act, expected):
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 5, 5))
    y = b.op("Conv", [x, b.const("w", rand(3, 2, 3, 3, lo=-4, hi=4))], **conv_attrs())
    attrs = {k: v for k, v in act.items() if k != "op"}
    y = b.op(act["op"], [y], **attrs)
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv"] and out.nodes[0].attrs["act"] == expected


def test_relu_after_maxpool_moves_into_conv_and_add_fuses():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 6, 6))
    y = b.op("Conv", [x, b.const("w", rand(2, 2, 3, 3))], **conv_attrs())
    y = b.op("MaxPool", [y], kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=0)
    y = b.op("Relu", [y])
    z = b.op("Add", [y, y])
    z = b.op("Clip", [z], min=-1.0, max=1.0)
    out = canonical_and_equal(b.build(z))
    assert ops(out) == ["Conv", "MaxPool", "Add"]
    assert out.nodes[0].attrs["act"] == "relu" and out.nodes[2].attrs["act"] == ("clip", -1.0, 1.0)


def test_activation_not_fused_when_conv_output_has_another_reader():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 5, 5))
    c = b.op("Conv", [x, b.const("w", rand(2, 2, 3, 3))], **conv_attrs())
    y = b.op("Add", [b.op("Relu", [c]), c])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv", "Relu", "Add"]


def test_zero_pad_folds_into_conv_and_avgpool():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 6, 6))
    p = b.op("Pad", [x], pads=(0, 0, 1, 2, 0, 0, 1, 0), value=0.0)
    y = b.op("Conv", [p, b.const("w", rand(2, 2, 3, 3))], **conv_attrs(pads=(0, 1, 0, 1)))
    q = b.op("Pad", [y], pads=(0, 0, 1, 1, 0, 0, 1, 1), value=0.0)
    z = b.op("AveragePool", [q], kernel_shape=(3, 3), strides=(1, 1), pads=(0, 0, 0, 0),
             ceil_mode=0, count_include_pad=0)
    out = canonical_and_equal(b.build(z))
    assert ops(out) == ["Conv", "AveragePool"]
    assert out.nodes[0].attrs["pads"] == (1, 3, 1, 1)
    assert out.nodes[1].attrs["pads"] == (1, 1, 1, 1) and out.nodes[1].attrs["count_include_pad"] == 1


def test_nonzero_pad_and_pool_excluding_pad_are_kept():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 6, 6))
    p = b.op("Pad", [x], pads=(0, 0, 1, 1, 0, 0, 1, 1), value=1.0)
    y = b.op("Conv", [p, b.const("w", rand(2, 2, 3, 3))], **conv_attrs())
    q = b.op("Pad", [y], pads=(0, 0, 1, 1, 0, 0, 1, 1), value=0.0)
    z = b.op("AveragePool", [q], kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1),
             ceil_mode=0, count_include_pad=0)
    out = canonical_and_equal(b.build(z))
    assert ops(out) == ["Pad", "Conv", "Pad", "AveragePool"]


def test_matmul_and_gemm_normalized_and_reshape_becomes_flatten():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 3, 2))
    y = b.op("Reshape", [x], shape=(1, 12), keep_batch=True)
    y = b.op("MatMul", [y, b.const("w1", rand(12, 7))])
    y = b.op("Gemm", [y, b.const("w2", rand(7, 4)), b.const("c2", rand(1, 4))], alpha=0.5, beta=2.0, transA=0, transB=0)
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Flatten", "Gemm", "Gemm"]
    assert out.nodes[0].attrs == {"axis": 1}
    for gemm, shape in zip(out.nodes[1:], [(7, 12), (4, 7)]):
        assert gemm.attrs["transB"] == 1 and gemm.attrs["alpha"] == 1.0 and gemm.attrs["beta"] == 1.0
        assert out.values[gemm.inputs[1]].shape == shape
    assert out.values[out.nodes[2].inputs[2]].shape == (4,)


@pytest.mark.parametrize("keepdims,axes", [(0, (2, 3)), (1, (2, 3)), (0, (-1, -2))])
def test_spatial_reduce_mean_becomes_global_pool(keepdims, axes):
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 3, 4, 5))
    y = b.op("ReduceMean", [x], axes=axes, keepdims=keepdims)
    out = canonical_and_equal(b.build(y))
    assert ops(out) == (["GlobalAveragePool"] if keepdims else ["GlobalAveragePool", "Flatten"])


def test_channel_reduce_mean_is_kept():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 3, 4, 5))
    y = b.op("ReduceMean", [x], axes=(1,), keepdims=1)
    assert ops(canonical_and_equal(b.build(y))) == ["ReduceMean"]


def test_small_cnn_from_onnx(small_cnn_onnx):
    from pqc.frontend import load_onnx

    out = canonical_and_equal(load_onnx(small_cnn_onnx), batch=4)
    assert "BatchNormalization" not in ops(out) and "Relu" not in ops(out)
    assert [n.attrs.get("act") for n in out.nodes if n.op in ("Conv", "Add")] == ["relu", None, "relu"]


def test_constant_channel_add_becomes_bias():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 2, 5, 5))
    y = b.op("Conv", [x, b.const("w", rand(3, 2, 3, 3))], **conv_attrs())
    y = b.op("Add", [b.const("cb", rand(1, 3, 1, 1)), y])
    y = b.op("Add", [y, b.const("row", rand(5))])  # varies along W: not a bias
    y = b.op("Flatten", [y], axis=1)
    y = b.op("MatMul", [y, b.const("w2", rand(75, 4))])
    y = b.op("Add", [y, b.const("b2", rand(4))])
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv", "Add", "Flatten", "Gemm"]
    assert len(out.nodes[0].inputs) == 3 and len(out.nodes[3].inputs) == 3


class MixedNet(torch.nn.Module):
    """Input normalization, explicit pad, Conv-BN-ReLU6, grouped conv, pool-then-ReLU, spatial
    mean, dropout, Linear-BN1d-ReLU, Linear: what torch's exporter writes for everyday models."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.c1, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.drop = nn.Dropout(0.5)
        self.fc1, self.bn1, self.fc2 = nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        F = torch.nn.functional
        x = F.pad((x - 0.5) / 0.25, (1, 1, 1, 1))
        y = F.relu6(self.bn(self.c1(x)))
        y = F.relu(F.max_pool2d(self.c2(y), 2)).mean(dim=(2, 3))
        return self.fc2(F.relu(self.bn1(self.fc1(self.drop(y)))))


def test_mixed_net_from_onnx(tmp_path):
    from conftest import export_legacy
    from pqc.frontend import load_onnx

    torch.manual_seed(0)
    net = MixedNet()
    net.bn1.running_mean.uniform_(-0.5, 0.5)
    out = canonical_and_equal(load_onnx(export_legacy(net, tmp_path / "mixed.onnx")), batch=4)
    assert ops(out) == ["Add", "Mul", "Conv", "Conv", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm", "Gemm"]
    acts = [n.attrs.get("act") for n in out.nodes if n.op in ("Conv", "Gemm")]
    assert acts == [("clip", 0.0, 6.0), "relu", "relu", None]


@pytest.mark.parametrize("model", ["resnet8", "mobilenetv2", "vgg"])
def test_every_step_is_a_pass_that_applies_alone_and_reaches_a_fixed_point(model):
    """Each step is registered under its own name, runs alone from a spec on the imported
    reference model, verifies, keeps the float function, and applying it again changes nothing."""
    from conftest import MODELS
    from pqc.frontend import load_onnx
    from pqc.passes.canonicalize import STEPS
    from pqc.pipeline import Pipeline, registered_passes

    graph = load_onnx(MODELS / f"{model}.onnx")
    x = np.random.default_rng(0).standard_normal((2, *graph.values[graph.inputs[0]].shape[1:])).astype(np.float32)
    ref = FloatExecutor(graph).run(x)[graph.outputs[0]]
    for step in STEPS:
        assert registered_passes()[step.__name__].doc, step.__name__
        once = Pipeline([step.__name__], verify=True).run(graph)
        twice = Pipeline([step.__name__], verify=True).run(once)
        assert str(twice) == str(once), step.__name__
        np.testing.assert_allclose(FloatExecutor(once).run(x)[once.outputs[0]], ref, rtol=1e-4, atol=1e-4)


def shuffle(b: GraphBuilder, x: str, groups: int, perm: tuple[int, ...] = (0, 2, 1, 3, 4)) -> str:
    """ShuffleNet's channel shuffle: split the channels into ``groups``, transpose, merge back."""
    n, c, h, w = b.graph.values[x].shape
    y = b.op("Reshape", [x], shape=(n, groups, c // groups, h, w), keep_batch=True)
    y = b.op("Transpose", [y], perm=perm)
    return b.op("Reshape", [y], shape=(n, c, h, w), keep_batch=True)


@pytest.mark.parametrize("groups", [2, 3, 4])
def test_channel_shuffle_becomes_one_channel_permute(groups):
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 12, 3, 5))
    y = shuffle(b, b.op("Conv", [x, b.const("w", rand(12, 12, 1, 1))], **conv_attrs(k=1, pads=(0, 0, 0, 0))), groups)
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Conv", "ChannelPermute"]
    want = np.arange(12).reshape(groups, 12 // groups).T.ravel()
    assert out.nodes[1].attrs["perm"] == tuple(int(v) for v in want)


def test_a_transpose_that_moves_pixels_stays():
    b = GraphBuilder(dynamic_batch=True)
    x = b.input("x", (1, 4, 3, 3))
    y = shuffle(b, x, 2, perm=(0, 1, 2, 4, 3))  # swaps rows and columns: not a channel permutation
    out = canonical_and_equal(b.build(y))
    assert ops(out) == ["Reshape", "Transpose", "Reshape"]
