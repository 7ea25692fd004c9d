"""Build the float IR `Graph` from a checked, shape-inferred, constant-folded ONNX model.

Each node goes to the importer registered for its op type; the builder owns what is common to
all of them: refusing unsupported ops, enforcing constant operands, unique node names, and
giving every IR value its static shape and the float32 dtype the IR requires. Value names are
the ONNX names, unchanged.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError
from ..ir import Graph, Node, Value
from ..ops import get_op
from .registry import IMPORTERS, ImportContext, Importer, OnnxNode, unique_name
from .shapes import TensorType

FLOAT_DTYPE = "float32"

#: Ops pqc accepts only when constant folding removes them (all their operands are constants).
FOLDED_ONLY_OPS = ("Constant", "ConstantOfShape", "Shape")


def supported_onnx_ops() -> list[str]:
    """Every ONNX op type a model may contain, sorted."""
    return sorted(set(IMPORTERS) | set(FOLDED_ONLY_OPS))


def build_graph(model: onnx.ModelProto, types: dict[str, TensorType], opset: int, *, name: str,
                dynamic_batch: bool) -> Graph:
    """Import every node of ``model`` (already folded, so its remaining nodes compute on
    activations) into a new Graph."""
    onnx_graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in onnx_graph.initializer}
    used = {i for n in onnx_graph.node for i in n.input if i} | {o.name for o in onnx_graph.output}
    producers = {o: n for n in onnx_graph.node for o in n.output if o}
    ctx = ImportContext(opset, types, constants, used, dynamic_batch, producers, taken_names=set(types) | set(constants))
    graph = Graph(name, dynamic_batch=dynamic_batch)
    for inp in onnx_graph.input:
        if inp.name not in constants:
            graph.add_value(_activation(inp.name, types, f"graph input {inp.name!r}"))
            graph.inputs.append(inp.name)
    node_names: set[str] = set()
    for proto in onnx_graph.node:
        view = OnnxNode(proto, unique_name(proto.name or f"{proto.op_type}_{proto.output[0]}", node_names), ctx)
        for node in _import_node(view):
            if node.name != view.name:
                node.name = unique_name(node.name, node_names)
            _add_node(graph, node, view, ctx)
    for out in onnx_graph.output:
        if out.name not in graph.values:
            graph.add_value(_constant(out.name, constants, None))
        graph.outputs.append(out.name)
    graph.prune_unused()  # nodes an importer fused into a later one (HardSigmoid into HardSwish)
    return graph


def _add_node(graph: Graph, node: Node, view: OnnxNode, ctx: ImportContext) -> None:
    """Append ``node`` with Values for its new constants and outputs. Outputs ONNX knows take
    its inferred shapes; intermediates of a multi-node import take the IR op's inference."""
    for value_name in node.inputs:
        if value_name and value_name not in graph.values:
            graph.add_value(_constant(value_name, ctx.constants, view))
    inferred = None if all(o in ctx.types for o in node.outputs) else get_op(node.op).infer_shapes(node, graph)
    for k, value_name in enumerate(node.outputs):
        if value_name in ctx.types:
            graph.add_value(_activation(value_name, ctx.types, f"output {value_name!r} of node {view.name!r} ({view.op_type})"))
        else:
            graph.add_value(Value(value_name, tuple(inferred[k]), FLOAT_DTYPE))
    if inferred is None:  # ONNX's shapes must be what the IR op computes (a ceil_mode pool may differ)
        for value_name, shape in zip(node.outputs, get_op(node.op).infer_shapes(node, graph)):
            declared = graph.values[value_name].shape
            if tuple(shape) != tuple(declared):
                raise view.refuse(f"ONNX gives output {value_name!r} shape {tuple(declared)} but pqc's {node.op} "
                                  f"computes {tuple(shape)} from these attributes; pqc cannot run this node as ONNX defines it")
    graph.nodes.append(node)


def _import_node(view: OnnxNode) -> list[Node]:
    entry: Importer | None = IMPORTERS.get(view.op_type)
    if entry is None:
        folded_hint = (
            f"; {view.op_type} is accepted only when all its operands are constants (folded at import)"
            if view.op_type in FOLDED_ONLY_OPS else ""
        )
        raise view.refuse(
            f"op type {view.op_type} is not supported{folded_hint}. Supported ONNX ops: {', '.join(supported_onnx_ops())}"
        )
    for position in entry.const_inputs:
        view.const(position)  # raises, naming the operand, when it is computed at run time
    result = entry.fn(view)
    return result if isinstance(result, list) else [result]


def _activation(name: str, types: dict[str, TensorType], what: str) -> Value:
    t = types.get(name)
    if t is None or t.shape is None:
        raise ModelError(f"{what} has no static shape after shape inference (dynamic shape)")
    if t.dtype != FLOAT_DTYPE:
        raise ModelError(f"{what} has dtype {t.dtype}; pqc's float IR is float32 only")
    return Value(name, t.shape, FLOAT_DTYPE)


def _constant(name: str, constants: dict[str, np.ndarray], reader: OnnxNode | None) -> Value:
    array = constants[name]
    if array.dtype != np.float32:
        where = f"node {reader.name!r} ({reader.op_type}) operand" if reader else "graph output"
        raise ModelError(f"{where} {name!r} is a constant of dtype {array.dtype}; pqc's float IR is float32 only")
    return Value(name, tuple(array.shape), FLOAT_DTYPE, array)
