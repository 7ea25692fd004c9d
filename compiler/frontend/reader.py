"""Read an ONNX model and refuse, with one clear message, anything the importers cannot trust.

Checks made here, before any op is looked at: the bytes are an ONNX model (not missing, empty,
truncated or foreign), onnx.checker accepts it, it imports only the default domain at an opset
pqc knows, every node operand is defined somewhere, and no initializer holds NaN or Inf.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

from ..errors import ModelError

#: Default-domain opsets pqc imports. Below 6 ops use legacy attributes (consumed_inputs) that no
#: exporter still writes; for the ops pqc supports, every schema change after opset 11 up to 25
#: only added tensor types, so 25 (the newest that onnx 1.23's conformance cases use) is safe.
MIN_OPSET = 6
MAX_OPSET = 25

DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(src: str | os.PathLike | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """Load ``src`` (a path, serialized bytes or a ModelProto) and validate it."""
    if isinstance(src, onnx.ModelProto):
        model = src
    elif isinstance(src, (bytes, bytearray)):
        model = _parse(bytes(src), "the serialized model")
    elif isinstance(src, (str, os.PathLike)):
        model = _load_file(os.fspath(src))
    else:
        raise ModelError(f"cannot read an ONNX model from a {type(src).__name__}; give a path, bytes or onnx.ModelProto")
    _check(model)
    return model


def _load_file(path: str) -> onnx.ModelProto:
    if not os.path.exists(path):
        raise ModelError(f"ONNX file {path!r} does not exist")
    if os.path.isdir(path):
        raise ModelError(f"{path!r} is a directory, not an ONNX file")
    with open(path, "rb") as f:
        data = f.read()
    model = _parse(data, f"file {path!r}")
    _check_external_files(model, path)
    try:
        onnx.load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
    except (OSError, ValueError) as exc:
        raise ModelError(f"file {path!r}: cannot load its external weight data: {exc}") from exc
    return model


def _check_external_files(model: onnx.ModelProto, path: str) -> None:
    """Refuse an initializer whose external data file is missing (onnx raises its own error type)."""
    folder = os.path.dirname(os.path.abspath(path))
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if not os.path.isfile(os.path.join(folder, location)):
            raise ModelError(f"file {path!r}: initializer {tensor.name!r} is stored in {location!r}, "
                             f"which is not a file in {folder}")


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{where} is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{where} is not a valid ONNX model (truncated or not ONNX at all): {exc}") from exc
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelError(f"{where} is not a valid ONNX model (no graph or IR version; truncated or not ONNX at all)")
    return model


def _check(model: onnx.ModelProto) -> None:
    external = [t.name for t in model.graph.initializer if uses_external_data(t)]
    if external:
        raise ModelError(
            f"initializer {external[0]!r} is stored in an external data file, which pqc can only read when "
            "given the model's path (not its bytes or an unloaded ModelProto)"
        )
    _check_opsets(model)
    _check_operands_defined(model.graph)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ModelError(f"ONNX model fails onnx.checker: {str(exc).strip().splitlines()[0]}") from exc
    _check_initializers_finite(model.graph)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's opset of the default ONNX domain."""
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return int(imp.version)
    raise ModelError("the model imports no opset of the default ONNX domain")


def _check_opsets(model: onnx.ModelProto) -> None:
    version = default_opset(model)
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise ModelError(
            f"the model uses ONNX opset {version}; pqc imports opsets {MIN_OPSET} to {MAX_OPSET} "
            "(re-export it with opset_version in that range)"
        )
    for node in model.graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            raise ModelError(
                f"node {node.name!r} ({node.domain}::{node.op_type}) is from a custom domain; "
                "pqc imports only the default ONNX domain"
            )


def _check_operands_defined(graph: onnx.GraphProto) -> None:
    """Refuse operands that are neither graph inputs, initializers nor node outputs.

    Done before onnx.checker, whose message for this case speaks of topological order.
    """
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {o for n in graph.node for o in n.output if o}
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                raise ModelError(
                    f"node {node.name!r} ({node.op_type}) reads {name!r}, which is neither a graph input, "
                    "an initializer nor produced by a node (missing initializer?)"
                )
    for out in graph.output:
        if out.name not in defined:
            raise ModelError(f"graph output {out.name!r} is never produced")


def _check_initializers_finite(graph: onnx.GraphProto) -> None:
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        if not np.issubdtype(array.dtype, np.floating):
            continue
        if np.isnan(array).any():
            raise ModelError(f"initializer {tensor.name!r} contains NaN")
        if np.isinf(array).any():
            raise ModelError(f"initializer {tensor.name!r} contains Inf")
