"""Static shapes and element types for every tensor of an ONNX model.

pqc's IR is fully static. A symbolic batch (axis 0 of a graph input) is pinned to 1 and reported
as a dynamic batch; any other symbolic or unknown dimension is refused. onnx.shape_inference then
gives every tensor its shape and element type.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

from ..errors import ModelError


@dataclass(frozen=True)
class TensorType:
    """A tensor's element type (numpy dtype name) and shape (None when not statically known)."""

    dtype: str
    shape: tuple[int, ...] | None


def pin_batch_dim(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """Return a copy of ``model`` whose graph inputs have static shapes, and whether axis 0 was
    symbolic (the dynamic batch). Stale value_info and output shapes are dropped so that shape
    inference recomputes them from the pinned inputs."""
    model = _copy(model)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    dynamic_batch = False
    for inp in graph.input:
        if inp.name in initializers:
            continue
        if not inp.type.HasField("tensor_type"):
            raise ModelError(f"graph input {inp.name!r} is not a tensor; pqc imports only tensor inputs (no sequences, maps or optionals)")
        if not inp.type.tensor_type.HasField("shape"):
            raise ModelError(f"graph input {inp.name!r} has no shape; pqc needs static input shapes")
        for axis, dim in enumerate(inp.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                continue
            if axis == 0:
                dim.Clear()
                dim.dim_value = 1
                dynamic_batch = True
                continue
            label = repr(dim.dim_param) if dim.dim_param else "unknown"
            raise ModelError(
                f"graph input {inp.name!r} has a dynamic dimension ({label}) at axis {axis}; pqc needs "
                "static shapes, only the batch dimension (axis 0) may be symbolic"
            )
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    return model, dynamic_batch


def infer_types(model: onnx.ModelProto) -> dict[str, TensorType]:
    """Shape-infer ``model`` and return the type of every named tensor (inputs, initializers,
    node outputs)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as exc:
        raise ModelError(f"ONNX shape inference fails on the model: {str(exc).strip().splitlines()[0]}") from exc
    graph = inferred.graph
    types: dict[str, TensorType] = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        types[info.name] = _tensor_type(info.type)
    for tensor in graph.initializer:
        types[tensor.name] = TensorType(_dtype_name(tensor.data_type), tuple(int(d) for d in tensor.dims))
    return types


def _tensor_type(type_proto: onnx.TypeProto) -> TensorType:
    if not type_proto.HasField("tensor_type"):
        return TensorType("non-tensor", None)
    tt = type_proto.tensor_type
    dtype = _dtype_name(tt.elem_type)
    if not tt.HasField("shape"):
        return TensorType(dtype, None)
    dims = tt.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return TensorType(dtype, None)
    return TensorType(dtype, tuple(int(d.dim_value) for d in dims))


def _dtype_name(elem_type: int) -> str:
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return TensorProto.DataType.Name(elem_type).lower()


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
