"""FloatExecutor: training semantics against torch.nn modules, parameters by IR name, numpy runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ir_builder import GraphBuilder, conv_attrs
from pqc.errors import DataError, ModelError
from pqc.executor import FloatExecutor

torch.set_num_threads(1)
RNG = np.random.default_rng(1)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def small_cnn(dynamic_batch: bool = True, batch: int = 1):
    """conv(3->4) + BN + relu -> global pool -> flatten -> gemm(4->3), with torch-unfriendly names."""
    b = GraphBuilder("small_cnn", dynamic_batch=dynamic_batch)
    x = b.input("input:0", (batch, 3, 6, 6))
    y = b.op("Conv", [x, b.const("conv.weight", rand(4, 3, 3, 3)), b.const("conv.bias", rand(4))], **conv_attrs(pads=(1, 0, 1, 2)))
    y = b.op("BatchNormalization", [y, b.const("bn/scale", rand(4)), b.const("bn/bias", rand(4)), b.const("bn/mean", rand(4)),
             b.const("bn/var", np.abs(rand(4)) + 0.5)], epsilon=1e-5, momentum=0.9)
    y = b.op("Relu", [y])
    y = b.op("Flatten", [b.op("GlobalAveragePool", [y])], axis=1)
    y = b.op("Gemm", [y, b.const("fc.weight", rand(3, 4)), b.const("fc.bias", rand(3))], alpha=1.0, beta=1.0, transA=0, transB=1)
    return b.build(y)


def torch_reference(graph) -> torch.nn.Sequential:
    """The same network from torch.nn modules, with the graph's constants copied in."""
    const = {k: torch.from_numpy(v.copy()) for k, v in graph.initializers.items()}
    conv = torch.nn.Conv2d(3, 4, 3)
    bn = torch.nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
    fc = torch.nn.Linear(4, 3)
    with torch.no_grad():
        conv.weight.copy_(const["conv.weight"]), conv.bias.copy_(const["conv.bias"])
        bn.weight.copy_(const["bn/scale"]), bn.bias.copy_(const["bn/bias"])
        bn.running_mean.copy_(const["bn/mean"]), bn.running_var.copy_(const["bn/var"])
        fc.weight.copy_(const["fc.weight"]), fc.bias.copy_(const["fc.bias"])
    pad = torch.nn.ZeroPad2d((0, 2, 1, 1))  # (left, right, top, bottom) for IR pads (1, 0, 1, 2)
    return torch.nn.Sequential(pad, conv, bn, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), fc)


def test_train_mode_matches_torch_batchnorm_and_gradients() -> None:
    graph = small_cnn()
    ex, ref = FloatExecutor(graph), torch_reference(graph)
    ex.train(), ref.train()
    for step in range(2):
        x = torch.from_numpy(rand(5, 3, 6, 6))
        (ours,), theirs = ex(x), ref(x)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        ours.square().sum().backward()
        theirs.square().sum().backward()
    torch.testing.assert_close(ex.param("bn/mean"), ref[2].running_mean)
    torch.testing.assert_close(ex.param("bn/var"), ref[2].running_var)
    grad = ex.param("conv.weight").grad
    assert grad is not None and grad.abs().sum() > 0
    torch.testing.assert_close(grad, ref[1].weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ex.param("fc.bias").grad, ref[6].bias.grad, rtol=1e-4, atol=1e-5)


def test_eval_mode_matches_torch_reference() -> None:
    graph = small_cnn()
    ex, ref = FloatExecutor(graph).eval(), torch_reference(graph).eval()
    x = rand(4, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(ex.run(x)[graph.outputs[0]]), ref(torch.from_numpy(x)), rtol=1e-5, atol=1e-5)


def test_parameters_and_buffers_by_ir_name() -> None:
    ex = FloatExecutor(small_cnn())
    names = [name for name, _ in ex.named_ir_parameters()]
    assert names == ["conv.weight", "conv.bias", "bn/scale", "bn/bias", "fc.weight", "fc.bias"]
    assert all(p.requires_grad for _, p in ex.named_ir_parameters())
    buffers = {id(t) for t in ex.buffers()}
    assert id(ex.param("bn/mean")) in buffers and id(ex.param("bn/var")) in buffers
    with pytest.raises(ModelError, match="no constant 'nope'"):
        ex.param("nope")


def test_to_graph_writes_back_trained_values_and_leaves_the_source_alone() -> None:
    graph = small_cnn()
    original_weight = graph.values["conv.weight"].data.copy()
    ex = FloatExecutor(graph)
    with torch.no_grad():
        ex.param("conv.weight").mul_(2.0)
    ex.train()
    ex(torch.from_numpy(rand(4, 3, 6, 6)))  # updates BN running statistics
    trained = ex.to_graph()
    trained.verify()
    np.testing.assert_array_equal(trained.values["conv.weight"].data, 2.0 * original_weight)
    np.testing.assert_array_equal(trained.values["bn/mean"].data, ex.param("bn/mean").detach().numpy())
    assert not np.array_equal(trained.values["bn/mean"].data, graph.values["bn/mean"].data)
    np.testing.assert_array_equal(graph.values["conv.weight"].data, original_weight)
    x = rand(2, 3, 6, 6)
    out = graph.outputs[0]
    np.testing.assert_allclose(FloatExecutor(trained).run(x)[out], ex.run(x)[out], rtol=1e-6)


def test_run_chunks_dynamic_batch_and_captures_values() -> None:
    graph = small_cnn()
    ex = FloatExecutor(graph, device="cpu")
    x = rand(7, 3, 6, 6)
    relu = graph.nodes[2].outputs[0]
    whole = ex.run(x, capture=[relu, "fc.weight"])
    chunked = ex.run({"input:0": x}, batch_size=3, capture=[relu, "fc.weight"])
    assert set(whole) == {graph.outputs[0], relu, "fc.weight"}
    assert whole[relu].shape == (7, 4, 6, 6) and chunked["fc.weight"].shape == (3, 4)
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        outputs, captured = ex(torch.from_numpy(x), capture=[relu])
    np.testing.assert_allclose(captured[relu].numpy(), whole[relu], rtol=1e-6)
    np.testing.assert_allclose(outputs[0].numpy(), whole[graph.outputs[0]], rtol=1e-6)


def test_starts_in_eval_mode() -> None:
    assert not FloatExecutor(small_cnn()).training


def test_run_restores_training_mode() -> None:
    ex = FloatExecutor(small_cnn()).train()
    mean_before = ex.param("bn/mean").clone()
    ex.run(rand(2, 3, 6, 6))
    assert ex.training
    torch.testing.assert_close(ex.param("bn/mean"), mean_before)


@pytest.mark.parametrize(
    "feeds, match",
    [
        (rand(2, 3, 6, 6).astype(np.float64), "dtype float64"),
        (rand(2, 3, 5, 6), r"expects \(N, 3, 6, 6\)"),
        ({"x": rand(2, 3, 6, 6)}, "missing \\['input:0'\\], unexpected \\['x'\\]"),
        ([[1.0]], "numpy array"),
    ],
)
def test_run_refuses_bad_feeds(feeds, match: str) -> None:
    with pytest.raises(DataError, match=match):
        FloatExecutor(small_cnn()).run(feeds)


def test_static_graph_runs_multiples_of_its_batch() -> None:
    ex = FloatExecutor(small_cnn(dynamic_batch=False, batch=2))
    x = rand(4, 3, 6, 6)
    out = ex.run(x)[ex.graph.outputs[0]]
    np.testing.assert_array_equal(out[2:], ex.run(x[2:])[ex.graph.outputs[0]])
    with pytest.raises(DataError, match=r"expects \(N, 3, 6, 6\), N a multiple of 2"):
        ex.run(rand(3, 3, 6, 6))


def test_batch_1_graph_runs_any_number_of_samples() -> None:
    ex = FloatExecutor(small_cnn(dynamic_batch=False, batch=1))
    x = rand(3, 3, 6, 6)
    out = ex.run(x)[ex.graph.outputs[0]]
    assert out.shape == (3, 3)
    np.testing.assert_array_equal(out[1:2], ex.run(x[1:2])[ex.graph.outputs[0]])


def test_multi_input_graph_and_capture_errors() -> None:
    b = GraphBuilder("two_inputs", dynamic_batch=True)
    a, c = b.input("a", (1, 4)), b.input("c", (1, 4))
    graph = b.build(b.op("Sub", [a, c]), a)
    ex = FloatExecutor(graph)
    out = ex.run({"a": np.ones((3, 4), np.float32), "c": np.full((3, 4), 2.0, np.float32)})
    np.testing.assert_array_equal(out[graph.outputs[0]], -np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(out["a"], np.ones((3, 4), np.float32))
    with pytest.raises(DataError, match="different batch sizes"):
        ex.run({"a": np.ones((3, 4), np.float32), "c": np.ones((2, 4), np.float32)})
    with pytest.raises(DataError, match="pass a dict"):
        ex.run(np.ones((3, 4), np.float32))
    with pytest.raises(ModelError, match="cannot capture \\['ghost'\\]"):
        ex.run({"a": np.ones((3, 4), np.float32), "c": np.ones((3, 4), np.float32)}, capture=["ghost"])


def test_verify_accepts_built_graphs_and_rejects_a_wrong_declared_shape() -> None:
    graph = small_cnn()
    graph.verify()
    broken = graph.copy()
    broken.values[broken.nodes[0].outputs[0]].shape = (1, 4, 6, 7)
    with pytest.raises(ModelError, match=r"declared \(1, 4, 6, 7\), op infers \(1, 4, 6, 6\)"):
        broken.verify()


def test_static_graph_inputs_need_not_share_dim_0() -> None:
    b = GraphBuilder("broadcast")
    a, c = b.input("a", (3, 4, 5)), b.input("c", (5,))
    graph = b.build(b.op("Add", [a, c]))
    feeds = {"a": rand(3, 4, 5), "c": rand(5)}
    np.testing.assert_allclose(FloatExecutor(graph).run(feeds)[graph.outputs[0]], feeds["a"] + feeds["c"], rtol=1e-6)
