"""Every float IR op: the executor's torch forward against onnxruntime running the exported node.

Each case builds a one- or few-node graph on an input of shape ``(B,) + shape``. Batch-independent
cases also run with a symbolic batch (declared 1, fed 3) to check that no forward bakes the
batch size in and that the exported model has the symbolic ``N``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from ir_builder import GraphBuilder, assert_matches_onnxruntime, conv_attrs
from pqc.errors import ModelError
from pqc.ops import get_op

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def pool(k, s, pads=(0, 0, 0, 0), ceil=0, **extra):
    return dict(kernel_shape=(k, k), strides=(s, s), pads=pads, ceil_mode=ceil, **extra)


Case = tuple[tuple[int, ...], Callable[[GraphBuilder, str], str], bool]
# name -> (input shape without batch, build(builder, x) -> output, batch-independent?)
CASES: dict[str, Case] = {
    "relu": ((3, 5, 5), lambda b, x: b.op("Relu", [x]), True),
    "clip": ((3, 5, 5), lambda b, x: b.op("Clip", [x], min=-0.5, max=0.7), True),
    "clip_min_only": ((3, 5, 5), lambda b, x: b.op("Clip", [x], min=0.1, max=None), True),
    "clip_max_only": ((3, 5, 5), lambda b, x: b.op("Clip", [x], min=None, max=0.2), True),
    "clip_unbounded": ((3, 5, 5), lambda b, x: b.op("Clip", [x], min=None, max=None), True),
    "leaky_relu": ((3, 5, 5), lambda b, x: b.op("LeakyRelu", [x], alpha=0.15), True),
    "hard_sigmoid": ((3, 5, 5), lambda b, x: b.op("HardSigmoid", [x], alpha=0.3, beta=0.4), True),
    "hard_swish": ((3, 5, 5), lambda b, x: b.op("HardSwish", [b.op("Mul", [x, b.const("k", np.float32(4.0))])]), True),
    "sigmoid": ((3, 5, 5), lambda b, x: b.op("Sigmoid", [x]), True),
    "add_act_act": ((3, 4, 4), lambda b, x: b.op("Add", [x, b.op("Relu", [x])]), True),
    "add_const_relu": ((3, 4, 4), lambda b, x: b.op("Add", [x, b.const("c", rand(1, 3, 1, 1))], act="relu"), True),
    "add_const_clip": ((3, 4, 4), lambda b, x: b.op("Add", [b.const("c", rand(4)), x], act=("clip", -0.3, 0.5)), True),
    "sub_const_first": ((3, 4, 4), lambda b, x: b.op("Sub", [b.const("c", rand(3, 1, 4)), x]), True),
    "mul": ((3, 4, 4), lambda b, x: b.op("Mul", [x, b.const("c", rand(3, 1, 1))]), True),
    "div": ((3, 4, 4), lambda b, x: b.op("Div", [x, b.const("c", np.float32(1.7))]), True),
    "conv_asym_group_relu6": (
        (4, 7, 6),
        lambda b, x: b.op("Conv", [x, b.const("w", rand(6, 2, 3, 3)), b.const("b", rand(6))],
                          **conv_attrs(stride=2, pads=(1, 0, 2, 1), group=2), act=("clip", 0.0, 6.0)),
        True,
    ),
    "batchnorm": (
        (3, 4, 4),
        lambda b, x: b.op("BatchNormalization", [x, b.const("s", rand(3)), b.const("t", rand(3)), b.const("m", rand(3)),
                          b.const("v", np.abs(rand(3)) + 0.5)], epsilon=1e-3, momentum=0.9),
        True,
    ),
    "maxpool_asym_pads": ((2, 7, 7), lambda b, x: b.op("MaxPool", [x], **pool(3, 2, (1, 0, 0, 2), dilations=(1, 1))), True),
    "maxpool_ceil": ((2, 8, 7), lambda b, x: b.op("MaxPool", [x], **pool(3, 2, (1, 1, 1, 1), 1, dilations=(1, 1))), True),
    "maxpool_ceil_drops_window_in_pad": ((2, 4, 4), lambda b, x: b.op("MaxPool", [x], **pool(2, 2, (0, 0, 1, 1), 1, dilations=(1, 1))), True),
    "maxpool_dilated": ((2, 9, 9), lambda b, x: b.op("MaxPool", [x], **pool(2, 1, (1, 1, 0, 0), 0, dilations=(2, 3))), True),
    "avgpool_include_pad_ceil": ((2, 7, 6), lambda b, x: b.op("AveragePool", [x], **pool(3, 2, (1, 0, 1, 2), 1, count_include_pad=1)), True),
    "avgpool_exclude_pad_ceil": ((2, 7, 6), lambda b, x: b.op("AveragePool", [x], **pool(3, 2, (1, 0, 1, 2), 1, count_include_pad=0)), True),
    "avgpool_plain": ((2, 8, 8), lambda b, x: b.op("AveragePool", [x], **pool(2, 2, count_include_pad=0)), True),
    "global_avgpool": ((5, 3, 4), lambda b, x: b.op("GlobalAveragePool", [x]), True),
    "reducemean_keepdims": ((5, 3, 4), lambda b, x: b.op("ReduceMean", [x], axes=(2, 3), keepdims=1), True),
    "reducemean_channels": ((5, 3, 4), lambda b, x: b.op("ReduceMean", [x], axes=(1,), keepdims=0), True),
    "reducemean_all": ((5, 3, 4), lambda b, x: b.op("ReduceMean", [x], axes=(), keepdims=0), False),
    "reducesum_spatial": ((5, 3, 4), lambda b, x: b.op("ReduceSum", [x], axes=(2, 3), keepdims=0), True),
    "reducemax_channels": ((5, 3, 4), lambda b, x: b.op("ReduceMax", [x], axes=(1,), keepdims=1), True),
    "transpose_channel_shuffle": ((2, 3, 4, 5), lambda b, x: b.op("Transpose", [x], perm=(0, 2, 1, 3, 4)), True),
    "channel_permute": ((5, 3, 4), lambda b, x: b.op("ChannelPermute", [x], perm=(3, 0, 4, 1, 2)), True),
    "lrn": ((6, 3, 4), lambda b, x: b.op("LRN", [x], size=5, alpha=1e-2, beta=0.75, bias=1.5), True),
    "mul_se_gate": ((3, 4, 4), lambda b, x: b.op("Mul", [x, b.op("HardSigmoid", [b.op("GlobalAveragePool", [x])], alpha=0.2, beta=0.5)]), True),
    "flatten": ((2, 3, 4), lambda b, x: b.op("Flatten", [x], axis=1), True),
    "flatten_axis0": ((2, 3, 4), lambda b, x: b.op("Flatten", [x], axis=0), False),
    "flatten_axis2": ((2, 3, 4), lambda b, x: b.op("Flatten", [x], axis=2), True),
    "reshape_keep_batch": ((2, 3, 4), lambda b, x: b.op("Reshape", [x], shape=(1, 6, 4), keep_batch=True), True),
    "reshape_static": ((2, 3, 4), lambda b, x: b.op("Reshape", [x], shape=(4, 12), keep_batch=False), False),
    "squeeze": ((5, 3, 4), lambda b, x: b.op("Squeeze", [b.op("GlobalAveragePool", [x])], axes=(2, 3)), True),
    "unsqueeze": ((5, 3), lambda b, x: b.op("Unsqueeze", [x], axes=(1, 4)), True),
    "gemm_bias_transb": ((6,), lambda b, x: b.op("Gemm", [x, b.const("w", rand(4, 6)), b.const("c", rand(4))],
                                                   alpha=1.0, beta=1.0, transA=0, transB=1), True),
    "gemm_alpha_beta_relu": ((6,), lambda b, x: b.op("Gemm", [x, b.const("w", rand(6, 4)), b.const("c", rand(1, 4))],
                                                       alpha=0.5, beta=2.0, transA=0, transB=0, act="relu"), True),
    "gemm_no_bias": ((6,), lambda b, x: b.op("Gemm", [x, b.const("w", rand(4, 6))], alpha=1.0, beta=1.0, transA=0, transB=1), True),
    "gemm_transa": ((6,), lambda b, x: b.op("Gemm", [x, b.const("w", rand(2, 5)), b.const("c", rand(6, 5))],
                                              alpha=1.5, beta=0.5, transA=1, transB=0), False),
    "matmul_const_right": ((4, 5), lambda b, x: b.op("MatMul", [x, b.const("w", rand(5, 3))]), True),
    "matmul_const_left": ((4, 5), lambda b, x: b.op("MatMul", [b.const("w", rand(6, 4)), x]), True),
    "concat_channels": ((3, 4, 4), lambda b, x: b.op("Concat", [x, b.op("Relu", [x]), x], axis=1), True),
    "concat_const": ((3, 4), lambda b, x: b.op("Concat", [x, b.const("c", rand(2, 3, 2))], axis=2), False),
    "identity": ((3, 4), lambda b, x: b.op("Identity", [x]), True),
    "dropout": ((3, 4), lambda b, x: b.op("Dropout", [x]), True),
    "pad": ((3, 4, 4), lambda b, x: b.op("Pad", [x], pads=(0, 0, 1, 2, 0, 1, 0, 3), value=0.25), True),
    "pad_crop": ((3, 5, 5), lambda b, x: b.op("Pad", [x], pads=(0, 0, -1, 2, 0, 0, 1, -2), value=-1.0), True),
    "softmax": ((7,), lambda b, x: b.op("Softmax", [x], axis=1, coerce_2d=False), True),
    "softmax_axis1_4d": ((3, 2, 4), lambda b, x: b.op("Softmax", [x], axis=1, coerce_2d=False), True),
    "softmax_coerce_2d": ((3, 2, 4), lambda b, x: b.op("Softmax", [x], axis=1, coerce_2d=True), True),
    "softmax_coerce_2d_last": ((3, 2, 4), lambda b, x: b.op("Softmax", [x], axis=3, coerce_2d=True), True),
    "softmax_coerce_2d_axis0": ((3, 2), lambda b, x: b.op("Softmax", [x], axis=0, coerce_2d=True), False),
}


def build_case(name: str, batch: int, dynamic: bool):
    shape, build, _ = CASES[name]
    b = GraphBuilder(name, dynamic_batch=dynamic)
    x = b.input("x", (1 if dynamic else batch,) + shape)
    return b.build(build(b, x)), {"x": rand(batch, *shape)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_onnxruntime(name: str) -> None:
    graph, feeds = build_case(name, batch=2, dynamic=False)
    assert_matches_onnxruntime(graph, feeds)


@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if case[2]))
def test_op_runs_any_batch_with_dynamic_batch(name: str) -> None:
    graph, feeds = build_case(name, batch=3, dynamic=True)
    assert_matches_onnxruntime(graph, feeds)


def test_every_registered_op_has_a_case() -> None:
    from pqc.ops import OPS

    covered = set()
    for name in CASES:
        graph, _ = build_case(name, batch=2, dynamic=False)
        covered.update(n.op for n in graph.nodes)
    assert covered == set(OPS)


@pytest.mark.parametrize("name, opset", [("reducemean_keepdims", 18), ("hard_swish", 14), ("softmax_coerce_2d", 21)])
def test_ops_whose_onnx_signature_changed_export_at_newer_opsets(name: str, opset: int) -> None:
    graph, feeds = build_case(name, batch=2, dynamic=True)
    assert_matches_onnxruntime(graph, feeds, opset=opset)


@pytest.mark.parametrize(
    "op, shape, attrs, match",
    [
        ("Squeeze", (1, 3, 2), dict(axes=(1,)), "cannot squeeze"),
        ("Pad", (1, 3), dict(pads=(0, 1), value=0.0), "pads"),
        ("MaxPool", (1, 1, 2, 2), pool(3, 1, dilations=(1, 1)), "does not fit"),
        ("Conv", (1, 3, 4, 4), conv_attrs(group=2), "Conv"),
    ],
)
def test_invalid_attributes_raise_model_error_naming_the_node(op, shape, attrs, match) -> None:
    b = GraphBuilder()
    x = b.input("x", shape)
    inputs = [x, b.const("w", rand(4, 3, 3, 3))] if op == "Conv" else [x]
    with pytest.raises(ModelError, match=match) as info:
        b.op(op, inputs, **attrs)
    assert f"{op.lower()}_node" in str(info.value)


def test_gemm_and_matmul_macs_at_graph_batch() -> None:
    b = GraphBuilder()
    x = b.input("x", (8, 6))
    g = b.op("Gemm", [x, b.const("w", rand(4, 6))], alpha=1.0, beta=1.0, transA=0, transB=1)
    m = b.op("MatMul", [b.op("Unsqueeze", [g], axes=(1,)), b.const("w2", rand(4, 5))])
    graph = b.build(m)
    gemm, matmul = graph.nodes[0], graph.nodes[2]
    assert get_op("Gemm").macs(gemm, graph) == 8 * 4 * 6
    assert get_op("MatMul").macs(matmul, graph) == 8 * 1 * 5 * 4
