"""Float IR op definitions: one `OpDef` per IR op, registered by name.

An OpDef holds every face of a float op side by side, so adding an op is one local change:

* ``forward``: its semantics in torch (the float executor, which is also the differentiable model
  that reconstruction and fine-tuning train through); must work for any batch size when
  ``graph.dynamic_batch`` is set;
* ``infer_shapes``: output shapes (by default the torch forward run on meta tensors, so shape
  rules cannot drift from semantics);
* ``to_onnx``: its ONNX node(s) for the exporter;
* ``macs``: multiply-accumulates at the graph's batch size, for reports and budgets.

The op modules below register themselves on import. ONNX *import* functions live in
`pqc.frontend`, one per ONNX op type.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..errors import ModelError
from ..ir import fresh_name
from ..registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from ..ir import Graph, Node, Shape

TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


class ExportContext:
    """What an op needs while exporting: fresh names, a place to put constant operands, and the
    target ``opset`` (for ops whose ONNX signature changed between opsets, e.g. ReduceMean)."""

    def __init__(self, graph: "Graph", opset: int = 13) -> None:
        self.graph = graph
        self.opset = opset
        self.initializers: list["onnx.TensorProto"] = []
        self._names: set[str] = set(graph.values) | {n.name for n in graph.nodes}

    def fresh(self, base: str) -> str:
        name = fresh_name(base, self._names)
        self._names.add(name)
        return name

    def constant(self, base: str, array: np.ndarray) -> str:
        """Add ``array`` as an initializer under a fresh name; return the name."""
        from onnx import numpy_helper

        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name


class OpDef:
    """Base class of float IR ops. Subclasses set ``name`` and override ``forward``."""

    name: str = ""
    #: input positions that hold non-trainable state (e.g. BN running statistics): the executor
    #: keeps them as torch buffers rather than Parameters.
    buffer_inputs: tuple[int, ...] = ()

    def forward(self, node: "Node", inputs: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_train(self, node: "Node", inputs: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Semantics in the executor's training mode. The tensors at ``buffer_inputs`` are the
        executor's live buffers, which this may update in place (BN running statistics). Ops
        that behave the same in both modes keep this default."""
        return self.forward(node, inputs)

    def infer_shapes(self, node: "Node", graph: "Graph") -> list["Shape"]:
        metas = [
            None if not i else torch.empty(graph.values[i].shape, dtype=TORCH_DTYPES.get(graph.values[i].dtype, torch.float32), device="meta")
            for i in node.inputs
        ]
        try:
            outs = self.forward(node, metas)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise ModelError(f"node {node.name!r} ({node.op}): invalid operand shapes or attributes: {exc}") from exc
        return [tuple(int(d) for d in o.shape) for o in outs]

    def to_onnx(self, node: "Node", ctx: ExportContext) -> list["onnx.NodeProto"]:
        """Default export: the same op type with the IR attributes (ops whose IR mirrors ONNX)."""
        from onnx import helper

        attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in node.attrs.items() if v is not None}
        return [helper.make_node(self.name, node.inputs, node.outputs, name=node.name, **attrs)]

    def macs(self, node: "Node", graph: "Graph") -> int:
        return 0


OPS: Registry[OpDef] = Registry("IR op")
#: class decorator: instantiate and register an OpDef under its ``name``
register = OPS.register
get_op = OPS.get


# Registration side effects: each module defines and registers its ops.
from . import arith, batchnorm, conv, elementwise, gemm, layout, normalization, pool, reduce, shape, softmax  # noqa: E402,F401
