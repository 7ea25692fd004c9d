"""Float IR -> ONNX, so onnxruntime can check the float executor and Netron can show the model.

Each op writes its own ONNX node(s) (`OpDef.to_onnx`); this module adds the graph's constants
as initializers and declares the graph inputs and outputs. With ``graph.dynamic_batch`` their
dim 0 is the symbolic ``"N"`` (every input and output of such a graph is batch-leading).
Intermediate shapes are left to ONNX shape inference.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import __version__
from .errors import ModelError
from .ir import Graph
from .ops import ExportContext, get_op

#: Opsets the exporter writes: 13 (where Squeeze/Unsqueeze axes and Softmax's per-axis meaning
#: arrived) up to 21, the newest opset where every op pqc exports has the signature it emits.
SUPPORTED_OPSETS = range(13, 22)


def to_onnx(graph: Graph, opset: int = 13) -> onnx.ModelProto:
    """The ONNX model of float ``graph`` at ``opset``, with the lowest IR version that opset allows."""
    if opset not in SUPPORTED_OPSETS:
        raise ModelError(
            f"cannot export graph {graph.name!r} at opset {opset}; supported: "
            f"{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}"
        )
    ctx = ExportContext(graph, opset)
    nodes = [proto for node in graph.nodes for proto in get_op(node.op).to_onnx(node, ctx)]
    used = [i for node in graph.nodes for i in node.inputs if i] + graph.outputs
    constants = [name for name in dict.fromkeys(used) if graph.values[name].is_const]
    initializers = [numpy_helper.from_array(np.asarray(graph.values[name].data), name) for name in constants]
    onnx_graph = helper.make_graph(
        nodes,
        graph.name,
        [_value_info(graph, name) for name in graph.inputs],
        [_value_info(graph, name) for name in graph.outputs],
        initializers + ctx.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        onnx_graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="pqc",
        producer_version=__version__,
    )


def save_onnx(graph: Graph, path: str | os.PathLike, opset: int = 13) -> None:
    """Write ``to_onnx(graph, opset)`` to ``path``."""
    onnx.save(to_onnx(graph, opset), os.fspath(path))


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    value = graph.values[name]
    dims: list[int | str] = list(value.shape)
    if graph.dynamic_batch and dims:
        dims[0] = "N"
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(value.dtype)), dims)
