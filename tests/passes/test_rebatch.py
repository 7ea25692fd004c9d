"""rebatch: a static batch-1 export runs on batches when nothing depends on its batch (RAPQ and
AdaPruner take it), and is refused when something does."""
from __future__ import annotations

import numpy as np
import pytest

from ir_builder import GraphBuilder, conv_attrs
from pqc.frontend import load_onnx
from pqc.passes.canonicalize import canonicalize
from pqc.passes.rapq import train
from pqc.passes.rebatch import rebatch


def static_net(concat_const: bool = False, reshape_to: tuple[int, ...] = (1, 32)):
    """Conv -> [Concat with a batch-1 constant] -> Reshape, at a fixed batch of 1."""
    b = GraphBuilder(dynamic_batch=False)
    x = b.input("x", (1, 2, 4, 4))
    y = b.op("Conv", [x, b.const("w", np.ones((2, 2, 3, 3), np.float32))], **conv_attrs())
    if concat_const:
        y = b.op("Concat", [y, b.const("c", np.zeros((1, 2, 4, 4), np.float32))], axis=1)
        reshape_to = (1, 64)
    return b.build(b.op("Reshape", [y], shape=reshape_to, keep_batch=False))


def test_a_batch_agnostic_static_graph_becomes_dynamic_with_the_same_function():
    graph = static_net()
    out = rebatch(graph)
    assert out is not None and out.dynamic_batch and not graph.dynamic_batch
    assert out.nodes[-1].attrs["keep_batch"] and not graph.nodes[-1].attrs["keep_batch"]
    assert rebatch(out) is out


@pytest.mark.parametrize("graph", [static_net(reshape_to=(2, 16)),  # the reshape moves data across axis 0
                                   static_net(concat_const=True)],  # a batch-1 constant meets a batch of 2
                         ids=["reshape-across-batch", "batch-1-constant"])
def test_a_graph_whose_result_depends_on_its_batch_is_refused(graph):
    assert rebatch(graph) is None


def test_rapq_takes_a_static_batch_1_export_and_gets_the_dynamic_exports_result(small_cnn_onnx):
    fast = {"wbits": 4, "abits": 4, "iters": 12, "calib_size": 32}
    x = np.random.default_rng(0).normal(size=(32, 1, 16, 16)).astype(np.float32)
    static = canonicalize(load_onnx(small_cnn_onnx, input_shapes={"input": (1, 1, 16, 16)}))
    assert not static.dynamic_batch
    dynamic = canonicalize(load_onnx(small_cnn_onnx))
    assert train(static, x, **fast).report() == train(dynamic, x, **fast).report()
