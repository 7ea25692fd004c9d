"""Constant folding at import: every node whose operands are all known becomes an initializer.

This resolves what exporters compute at run time from constants: Constant nodes, Clip bounds and
Reshape shapes built by Gather/Unsqueeze/Concat/Cast chains, and ``Shape`` of a statically shaped
tensor (torch writes ``x.view(x.size(0), -1)`` as Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
With a dynamic batch, the pinned batch of 1 is what Shape reads; the Reshape importer refuses a
result that does not keep the batch dimension.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ..errors import ModelError
from .shapes import TensorType

#: Ops whose value may not be a function of their operands (Dropout: in training mode): never folded.
NONDETERMINISTIC_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"}
)


def fold_constants(model: onnx.ModelProto, types: dict[str, TensorType], opset: int) -> onnx.ModelProto:
    """Return a copy of ``model`` in which every foldable node is replaced by initializers."""
    graph = model.graph
    known: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept: list[onnx.NodeProto] = []
    folded: dict[str, np.ndarray] = {}
    for node in graph.node:
        values = _evaluate(node, known, types, opset)
        if values is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            if name:
                known[name] = folded[name] = np.asarray(value)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    out.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in folded.items())
    return out


def _evaluate(
    node: onnx.NodeProto, known: dict[str, np.ndarray], types: dict[str, TensorType], opset: int
) -> list[np.ndarray] | None:
    """The node's output values when they follow from known values, else None."""
    if node.op_type == "Shape":
        return _static_shape(node, types)
    if node.op_type in NONDETERMINISTIC_OPS or not all(i in known for i in node.input if i):
        return None
    feeds = {i: known[i] for i in node.input if i}
    try:
        return list(ReferenceEvaluator(_one_node_model(node, opset)).run(None, feeds))
    except Exception as exc:  # the reference runtime raises many types; all mean the same here
        raise ModelError(f"node {node.name!r} ({node.op_type}): cannot evaluate it on its constant operands: {exc}") from exc


def _static_shape(node: onnx.NodeProto, types: dict[str, TensorType]) -> list[np.ndarray] | None:
    t = types.get(node.input[0])
    if t is None or t.shape is None:
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [np.array(t.shape[start:end], dtype=np.int64)]


def _one_node_model(node: onnx.NodeProto, opset: int) -> onnx.ModelProto:
    """``node`` alone in a model of the given opset: the reference runtime picks an op's schema by
    the model's opset, while for a bare node it takes the newest (Unsqueeze-13 for an opset-11
    Unsqueeze with attribute axes)."""
    graph = onnx.helper.make_graph(
        [node], "fold", [onnx.ValueInfoProto(name=i) for i in node.input if i],
        [onnx.ValueInfoProto(name=o) for o in node.output if o],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
