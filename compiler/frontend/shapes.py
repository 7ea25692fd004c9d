"""Static shapes and element types for every tensor of an ONNX model.

pqc's IR is fully static. The user may fix dynamic input dims (``input_shapes``, the CLI's
``--input-shape NAME:1x3x48x192``); a symbolic batch left (axis 0 of a graph input) is pinned to
1 and reported as a dynamic batch; any other symbolic or unknown dimension is refused.
onnx.shape_inference then gives every tensor its shape and element type.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping, Sequence

import onnx
from onnx import TensorProto

from ..errors import ModelError, PqcError

#: IR version from which initializers need not be listed as graph inputs (IR 3 files list them:
#: they are constants, and shape inference of an IR-3 model ignores initializers that are not).
IR_INITIALIZERS_NOT_INPUTS = 4


@dataclass(frozen=True)
class TensorType:
    """A tensor's element type (numpy dtype name) and shape (None when not statically known)."""

    dtype: str
    shape: tuple[int, ...] | None


def parse_input_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"NAME:1x3x48x192"`` as ``("NAME", (1, 3, 48, 192))``; refuse anything else."""
    name, sep, dims = spec.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape:
        raise PqcError(f"input shape {spec!r} is not NAME:DIMS with dims separated by 'x' (e.g. input:1x3x48x192)")
    return name, shape


def pin_batch_dim(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> tuple[onnx.ModelProto, bool]:
    """Return a copy of ``model`` whose graph inputs have static shapes, and whether axis 0 was
    left symbolic (the dynamic batch). ``input_shapes`` fixes the dims of named inputs first.
    Initializers listed as graph inputs (IR 3) stop being inputs. Stale value_info and output
    shapes are dropped so that shape inference recomputes them from the pinned inputs."""
    model = _copy(model)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    kept = [inp for inp in graph.input if inp.name not in initializers]
    del graph.input[:]
    graph.input.extend(kept)  # copies: edit the graph's own messages below
    inputs = list(graph.input)
    model.ir_version = max(model.ir_version, IR_INITIALIZERS_NOT_INPUTS)
    _fix_input_shapes(inputs, dict(input_shapes or {}))
    dynamic_batch = False
    for inp in inputs:
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
                f"static shapes, only the batch dimension (axis 0) may be symbolic "
                f"(fix it with --input-shape {inp.name}:DIMS)"
            )
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    return model, dynamic_batch


def _fix_input_shapes(inputs: list[onnx.ValueInfoProto], shapes: dict[str, Sequence[int]]) -> None:
    """Check every input is a shaped tensor, and set the dims ``shapes`` gives (refusing unknown
    names, wrong ranks, non-positive dims and dims that contradict a static one)."""
    by_name = {inp.name: inp for inp in inputs}
    unknown = sorted(set(shapes) - set(by_name))
    if unknown:
        raise ModelError(f"input shape given for {unknown[0]!r}, which is not a graph input; the inputs are: {', '.join(by_name)}")
    for inp in inputs:
        if not inp.type.HasField("tensor_type"):
            raise ModelError(f"graph input {inp.name!r} is not a tensor; pqc imports only tensor inputs (no sequences, maps or optionals)")
        given = shapes.get(inp.name)
        if not inp.type.tensor_type.HasField("shape"):
            if given is None:
                raise ModelError(f"graph input {inp.name!r} has no shape; pqc needs static input shapes (give one with --input-shape)")
            inp.type.tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension() for _ in given)
        if given is not None:
            _fix_dims(inp, tuple(given))


def _fix_dims(inp: onnx.ValueInfoProto, given: tuple) -> None:
    dims = inp.type.tensor_type.shape.dim
    if len(given) != len(dims):
        raise ModelError(f"input shape {given} for {inp.name!r} has rank {len(given)}; the input has rank {len(dims)}")
    if not all(isinstance(d, numbers.Integral) and d > 0 for d in given):
        raise ModelError(f"input shape {given} for {inp.name!r}: every dim must be a positive integer")
    for axis, (dim, size) in enumerate(zip(dims, given)):
        if dim.HasField("dim_value") and dim.dim_value != size:
            raise ModelError(f"input shape {given} for {inp.name!r} contradicts its static dim {dim.dim_value} at axis {axis}")
        dim.Clear()
        dim.dim_value = int(size)


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
