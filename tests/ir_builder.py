"""Test helpers: build small float IR graphs by hand, and check the executor against onnxruntime.

`GraphBuilder` declares each node's output shape from the op's own shape inference, so a test
states only inputs, constants, ops and attributes; `assert_matches_onnxruntime` then checks both
faces of every op at once (the torch forward and the ONNX export).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from pqc.executor import FloatExecutor
from pqc.exporter import to_onnx
from pqc.ir import Graph, Node, Value
from pqc.ops import get_op


class GraphBuilder:
    """Append-only construction of a `Graph`; every helper returns the new value's name."""

    def __init__(self, name: str = "test", dynamic_batch: bool = False) -> None:
        self.graph = Graph(name, dynamic_batch=dynamic_batch)

    def input(self, name: str, shape: tuple[int, ...], dtype: str = "float32") -> str:
        self.graph.add_value(Value(name, tuple(shape), dtype))
        self.graph.inputs.append(name)
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        return self.graph.add_const(name, np.asarray(array)).name

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        """Add ``op`` reading ``inputs`` with ``attrs``; its single output gets the inferred shape."""
        out = self.graph.unique_name(f"{op.lower()}_out")
        node = Node(op, list(inputs), [out], attrs, name=self.graph.unique_name(f"{op.lower()}_node"))
        self.graph.add_value(Value(out, ()))
        (shape,) = get_op(op).infer_shapes(node, self.graph)
        self.graph.values[out].shape = shape
        self.graph.nodes.append(node)
        return out

    def build(self, *outputs: str) -> Graph:
        self.graph.outputs = list(outputs)
        self.graph.verify()
        return self.graph


def conv_attrs(k: int = 3, stride: int = 1, pads: tuple[int, int, int, int] = (1, 1, 1, 1), group: int = 1, dilation: int = 1) -> dict:
    return dict(kernel_shape=(k, k), strides=(stride, stride), dilations=(dilation, dilation), pads=pads, group=group)


def onnxruntime_outputs(graph: Graph, feeds: dict[str, np.ndarray], opset: int = 13) -> dict[str, np.ndarray]:
    """Export ``graph``, check the model fully, and run it in onnxruntime."""
    model = to_onnx(graph, opset)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(graph.outputs, session.run(graph.outputs, feeds)))


def assert_matches_onnxruntime(graph: Graph, feeds: dict[str, np.ndarray], opset: int = 13, atol: float = 1e-5) -> None:
    """The executor and onnxruntime (on the exported model) give the same outputs within ``atol``."""
    ours = FloatExecutor(graph).run(feeds)
    theirs = onnxruntime_outputs(graph, feeds, opset)
    for name in graph.outputs:
        assert ours[name].shape == theirs[name].shape, name
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=atol, err_msg=name)
