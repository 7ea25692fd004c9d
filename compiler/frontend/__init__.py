"""ONNX frontend: import a model into pqc's float IR, or refuse it with one clear message.

Pipeline: read and check the file (`reader`), fix the input shapes the user gives, pin a symbolic
batch to 1 and infer static shapes (`shapes`), fold everything computable from constants (`constants`), infer again so folded shapes
and Reshape targets are static, then import node by node through the registry (`builder`;
one small function per ONNX op type in `nn_importers`, `elementwise_importers`,
`tensor_importers`).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import onnx

from ..errors import ModelError
from ..ir import Graph
from . import elementwise_importers, nn_importers, tensor_importers  # noqa: F401  (register the importers)
from .builder import build_graph, supported_onnx_ops
from .constants import fold_constants
from .reader import MAX_OPSET, MIN_OPSET, default_opset, read_model
from .registry import IMPORTERS
from .shapes import infer_types, parse_input_shape, pin_batch_dim

__all__ = ["load_onnx", "parse_input_shape", "SUPPORTED_ONNX_OPS", "IMPORTERS", "MIN_OPSET", "MAX_OPSET"]

#: Every ONNX op type pqc imports (Constant and Shape only as folded constants), sorted.
SUPPORTED_ONNX_OPS: list[str] = supported_onnx_ops()


def load_onnx(src: str | os.PathLike | bytes | onnx.ModelProto, *, name: str | None = None,
              input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import an ONNX model (path, serialized bytes or ModelProto) as a verified float IR Graph.

    ``input_shapes`` maps graph input names to full static shapes that replace their dynamic
    dims before shape inference (a given batch makes the model static-batch).

    Raises `pqc.errors.ModelError` naming the culprit for anything pqc cannot import; any other
    exception is a pqc bug.
    """
    model = read_model(src)
    opset = default_opset(model)
    model, dynamic_batch = pin_batch_dim(model, input_shapes)
    model = fold_constants(model, infer_types(model), opset)
    graph_name = name or _file_stem(src) or model.graph.name or "model"
    graph = build_graph(model, infer_types(model), opset, name=graph_name, dynamic_batch=dynamic_batch)
    try:
        graph.verify()
    except ModelError as exc:  # the model was valid ONNX: an IR that fails verification is a pqc bug
        raise RuntimeError(f"pqc bug: the imported graph fails verification: {exc}") from exc
    return graph


def _file_stem(src: object) -> str | None:
    if isinstance(src, (str, os.PathLike)):
        return os.path.splitext(os.path.basename(os.fspath(src)))[0]
    return None
