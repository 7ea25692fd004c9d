"""The importer registry: one small function per ONNX op type, and the view of a node it reads.

An importer turns one ONNX node into one IR `Node` (or a short chain of them) with explicit,
normalized attributes. It is registered with the operand positions that must be constants
(weights, Clip bounds, Reshape shapes, ...): the graph builder enforces them before calling it,
and the conformance harness binds them from a test case's data. An op type missing from the
registry is unsupported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx

from ..errors import ModelError
from ..ir import Node, fresh_name
from .shapes import TensorType


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_<k>`` with the smallest k that is not taken; records it as taken."""
    name = fresh_name(base, taken)
    taken.add(name)
    return name


@dataclass
class ImportContext:
    """What importers may know about the whole model."""

    opset: int
    types: dict[str, TensorType]
    constants: dict[str, np.ndarray]
    used: set[str]
    dynamic_batch: bool
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    taken_names: set[str] = field(default_factory=set)

    def fresh_name(self, base: str) -> str:
        return unique_name(base, self.taken_names)


class OnnxNode:
    """Read access to one ONNX node during import: attributes, operands, shapes, the opset."""

    def __init__(self, proto: onnx.NodeProto, name: str, ctx: ImportContext) -> None:
        self.name = name
        self.op_type = proto.op_type
        self.opset = ctx.opset
        self.dynamic_batch = ctx.dynamic_batch
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self._ctx = ctx
        self._attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}

    # ----------------------------------------------------------------- attributes
    def attr(self, key: str, default: Any = None) -> Any:
        value = self._attrs.get(key, default)
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return tuple(value)
        return value

    def has_attr(self, key: str) -> bool:
        return key in self._attrs

    # ----------------------------------------------------------------- operands
    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and bool(self.inputs[i])

    def is_const(self, i: int) -> bool:
        return self.has_input(i) and self.inputs[i] in self._ctx.constants

    def const(self, i: int) -> np.ndarray | None:
        """The value of constant operand ``i``, or None when the operand is omitted."""
        if not self.has_input(i):
            return None
        if self.inputs[i] not in self._ctx.constants:
            raise self.refuse(f"operand {i} ({self.inputs[i]!r}) must be a constant (an initializer or folded at import)")
        return self._ctx.constants[self.inputs[i]]

    def shape(self, i: int = 0) -> tuple[int, ...]:
        """The static shape of operand ``i``."""
        return self.type_of(self.inputs[i]).shape  # type: ignore[return-value]

    def out_shape(self, j: int = 0) -> tuple[int, ...]:
        return self.type_of(self.outputs[j]).shape  # type: ignore[return-value]

    def type_of(self, value: str) -> TensorType:
        t = self._ctx.types.get(value)
        if t is None or t.shape is None:
            raise self.refuse(f"tensor {value!r} has no static shape after shape inference (dynamic shape)")
        return t

    def producer(self, i: int) -> "OnnxNode | None":
        """A view of the ONNX node that computes operand ``i`` (None for inputs and constants)."""
        proto = self._ctx.producers.get(self.inputs[i]) if self.has_input(i) else None
        return None if proto is None else OnnxNode(proto, proto.name, self._ctx)

    def output_used(self, j: int) -> bool:
        """Whether output ``j`` exists and is read by a node or is a graph output."""
        return j < len(self.outputs) and bool(self.outputs[j]) and self.outputs[j] in self._ctx.used

    # ----------------------------------------------------------------- results
    def refuse(self, why: str) -> ModelError:
        """The error to raise for this node: names the node and its op type."""
        return ModelError(f"node {self.name!r} ({self.op_type}): {why}")

    def fresh_value(self, base: str) -> str:
        """A new value name for an intermediate result of a multi-node import."""
        return self._ctx.fresh_name(base)

    def new_const(self, base: str, array: np.ndarray) -> str:
        """Add a constant derived from the model's (e.g. a reshaped weight); returns its name."""
        name = self._ctx.fresh_name(base)
        self._ctx.constants[name] = np.ascontiguousarray(array)
        return name

    def ir(self, op: str, inputs: list[str] | None = None, attrs: dict[str, Any] | None = None) -> Node:
        """The IR node of this ONNX node: inputs default to the ONNX operands, the output is the
        first ONNX output (pqc refuses nodes whose other outputs are used)."""
        return Node(op, list(self.inputs if inputs is None else inputs), self.outputs[:1], dict(attrs or {}), name=self.name)


ImportFn = Callable[[OnnxNode], "Node | list[Node]"]


@dataclass(frozen=True)
class Importer:
    """A registered import function and the operand positions it needs constant.

    ``either_const`` marks ops whose two operands may come in either order but one of which must
    be constant (Mul, MatMul); the conformance harness binds the second one.
    """

    op_type: str
    fn: ImportFn
    const_inputs: tuple[int, ...] = ()
    either_const: bool = False

    @property
    def bound_inputs(self) -> tuple[int, ...]:
        """Operand positions the conformance harness turns into initializers."""
        return self.const_inputs or ((1,) if self.either_const else ())


IMPORTERS: dict[str, Importer] = {}


def importer(op_type: str, *, const_inputs: tuple[int, ...] = (), either_const: bool = False) -> Callable[[ImportFn], ImportFn]:
    """Decorator: register ``fn`` as the importer of ONNX ``op_type``."""

    def register(fn: ImportFn) -> ImportFn:
        if op_type in IMPORTERS:
            raise RuntimeError(f"ONNX op {op_type} has two importers")
        IMPORTERS[op_type] = Importer(op_type, fn, const_inputs, either_const)
        return fn

    return register
