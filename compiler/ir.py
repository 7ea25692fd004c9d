"""pqc's graph IR: a small explicit dataflow graph of `Node`s over named `Value`s.

Conventions every pass relies on:

* Every `Value` has a static shape (a tuple of ints) and a dtype name. Activations carry their
  leading batch dimension as it was imported (a symbolic batch becomes 1 and
  ``graph.dynamic_batch`` is set, so executors may run any batch size).
* Constants (weights, biases, BN statistics) are `Value`s whose ``data`` is a numpy array.
  Arrays are shared between copies of a graph and must be treated as immutable: a pass that
  changes a weight stores a new array.
* Op attributes are plain Python data (ints, floats, strings, tuples); ONNX operands that must
  be constant (Clip bounds, Reshape shapes, Pad widths, axes) are attributes, not inputs.
* ``graph.nodes`` is kept in a valid topological order; `Graph.verify` checks it and every other
  invariant. A pass works on ``graph.copy()`` and never mutates its input.

networkx answers the structural queries (topological order, reachability, dependencies);
`Graph.nx()` builds a fresh `networkx.DiGraph` of node names on demand.
"""
from __future__ import annotations

import copy as _copy
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Iterator

import networkx as nx
import numpy as np

from .errors import ModelError

Shape = tuple[int, ...]


@dataclass
class Value:
    """A named tensor: an activation (``data is None``) or a constant."""

    name: str
    shape: Shape
    dtype: str = "float32"
    data: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Node:
    """One operation. ``inputs`` may contain ``""`` for an omitted optional operand."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.op}_{self.outputs[0]}" if self.outputs else self.op


class Graph:
    """A model: values, topologically ordered nodes, and the graph's inputs and outputs."""

    def __init__(
        self,
        name: str = "model",
        values: Iterable[Value] = (),
        nodes: Iterable[Node] = (),
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        dynamic_batch: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.values: dict[str, Value] = {v.name: v for v in values}
        self.nodes: list[Node] = list(nodes)
        self.inputs: list[str] = list(inputs)
        self.outputs: list[str] = list(outputs)
        self.dynamic_batch = dynamic_batch
        self.meta: dict[str, Any] = dict(meta or {})

    # ----------------------------------------------------------------- construction
    def add_value(self, value: Value) -> Value:
        if value.name in self.values:
            raise ValueError(f"value {value.name!r} already exists")
        self.values[value.name] = value
        return value

    def add_const(self, name: str, data: np.ndarray) -> Value:
        """Add a constant under a fresh name derived from ``name``; returns the new Value."""
        data = np.asarray(data)
        return self.add_value(Value(self.unique_name(name), tuple(data.shape), str(data.dtype), data))

    def unique_name(self, base: str) -> str:
        """``base`` made unique among the graph's value and node names (`fresh_name`)."""
        return fresh_name(base, self.values, {n.name for n in self.nodes})

    def copy(self) -> "Graph":
        """A copy whose nodes, values and attribute dicts may be edited freely.

        Constant arrays are shared (they are immutable by convention), which keeps copies cheap.
        """
        g = Graph(self.name, dynamic_batch=self.dynamic_batch, meta=_copy.deepcopy(self.meta))
        g.values = {
            k: Value(v.name, v.shape, v.dtype, v.data, _copy.deepcopy(v.meta)) for k, v in self.values.items()
        }
        g.nodes = [
            Node(n.op, list(n.inputs), list(n.outputs), _copy.deepcopy(n.attrs), n.name, _copy.deepcopy(n.meta))
            for n in self.nodes
        ]
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        return g

    # ----------------------------------------------------------------- queries
    def value(self, name: str) -> Value:
        return self.values[name]

    def const(self, name: str) -> np.ndarray | None:
        """The array of a constant value, or None when ``name`` is empty or not constant."""
        v = self.values.get(name) if name else None
        return None if v is None else v.data

    @property
    def initializers(self) -> dict[str, np.ndarray]:
        return {k: v.data for k, v in self.values.items() if v.data is not None}

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, value_name: str) -> Node | None:
        for n in self.nodes:
            if value_name in n.outputs:
                return n
        return None

    def consumers(self, value_name: str) -> list[Node]:
        return [n for n in self.nodes if value_name in n.inputs]

    def producers_map(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def nx(self) -> nx.DiGraph:
        """Node-level dependency graph: an edge u->v labelled ``value`` when v reads u's output."""
        dg = nx.DiGraph()
        prod = self.producers_map()
        for n in self.nodes:
            dg.add_node(n.name, node=n)
        for n in self.nodes:
            for i in n.inputs:
                p = prod.get(i)
                if p is not None:
                    dg.add_edge(p.name, n.name, value=i)
        return dg

    def upstream(self, node_name: str) -> set[str]:
        """Names of all nodes ``node_name`` depends on (transitively)."""
        return nx.ancestors(self.nx(), node_name)

    def activations(self) -> list[str]:
        """Names of all non-constant values: graph inputs then node outputs in order."""
        return list(self.inputs) + [o for n in self.nodes for o in n.outputs]

    # ----------------------------------------------------------------- editing
    def replace_uses(self, old: str, new: str) -> None:
        """Make every reader of value ``old`` (nodes and graph outputs) read ``new`` instead."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove_node(self, node: Node) -> None:
        self.nodes.remove(node)

    def prune_unused(self) -> None:
        """Drop nodes whose outputs reach no graph output, then values nobody references."""
        needed = set(self.outputs)
        keep: list[Node] = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.outputs):
                keep.append(n)
                needed.update(i for i in n.inputs if i)
        self.nodes = keep[::-1]
        referenced = needed | set(self.inputs)
        self.values = {k: v for k, v in self.values.items() if k in referenced}

    # ----------------------------------------------------------------- checking
    def verify(self) -> None:
        """Check the IR invariants; raise `ModelError` naming the first violation.

        Single producer per value, every operand defined before use (so the node list is a
        topological order and the graph is acyclic), every value declared with a static shape,
        known ops with valid attributes, and output shapes equal to what the op infers.
        """
        from .intops import INT_OPS  # local: the op modules import ir
        from .ops import get_op

        def opdef(op: str):  # float and integer programs share the IR
            return INT_OPS[op] if op in INT_OPS else get_op(op)

        defined: set[str] = set()
        for name in self.inputs:
            if name not in self.values:
                raise ModelError(f"graph input {name!r} has no Value")
            if self.values[name].is_const:
                raise ModelError(f"graph input {name!r} is a constant")
            defined.add(name)
        defined.update(k for k, v in self.values.items() if v.is_const)
        for v in self.values.values():
            if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in v.shape):
                raise ModelError(f"value {v.name!r} has a non-static shape {v.shape}")
            if v.data is not None and tuple(v.data.shape) != tuple(v.shape):
                raise ModelError(f"constant {v.name!r}: data shape {v.data.shape} != declared {v.shape}")
        names: set[str] = set()
        for n in self.nodes:
            if n.name in names:
                raise ModelError(f"duplicate node name {n.name!r}")
            names.add(n.name)
            for i in n.inputs:
                if i and i not in defined:
                    raise ModelError(
                        f"node {n.name!r} ({n.op}) reads {i!r} before it is defined "
                        "(undefined value, or nodes out of topological order / a cycle)"
                    )
            for o in n.outputs:
                if o in defined:
                    raise ModelError(f"value {o!r} has more than one producer (second: node {n.name!r})")
                if o not in self.values:
                    raise ModelError(f"node {n.name!r} output {o!r} has no Value")
                defined.add(o)
            inferred = opdef(n.op).infer_shapes(n, self)
            for o, shape in zip(n.outputs, inferred):
                if tuple(self.values[o].shape) != tuple(shape):
                    raise ModelError(
                        f"node {n.name!r} ({n.op}): output {o!r} declared {self.values[o].shape}, "
                        f"op infers {tuple(shape)}"
                    )
        for o in self.outputs:
            if o not in defined:
                raise ModelError(f"graph output {o!r} is never produced")

    # ----------------------------------------------------------------- printing
    def __str__(self) -> str:
        def fmt(name: str) -> str:
            if not name:
                return "_"
            v = self.values.get(name)
            if v is None:
                return f"%{name}"
            return f"%{name}" if not v.is_const else f"@{name}"

        def typ(name: str) -> str:
            v = self.values[name]
            return f"{v.dtype}[{'x'.join(map(str, v.shape))}]"

        lines = [f"graph {self.name}" + (" (dynamic batch)" if self.dynamic_batch else "") + " {"]
        for i in self.inputs:
            lines.append(f"  input  %{i}: {typ(i)}")
        for k, v in self.values.items():
            if v.is_const:
                lines.append(f"  const  @{k}: {typ(k)}")
        for n in self.nodes:
            attrs = ", ".join(f"{k}={_fmt_attr(a)}" for k, a in sorted(n.attrs.items()))
            outs = ", ".join(f"%{o}: {typ(o)}" for o in n.outputs)
            ins = ", ".join(fmt(i) for i in n.inputs)
            lines.append(f"  {outs} = {n.op}({ins}){' {' + attrs + '}' if attrs else ''}  # {n.name}")
        lines.append("  return " + ", ".join(f"%{o}" for o in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


def fresh_name(base: str, *taken: Container[str]) -> str:
    """``base``, or ``base_<k>`` with the smallest k >= 1 that none of ``taken`` holds: the one
    naming rule for every name pqc makes up (values, nodes, exported tensors, torch attributes)."""
    name, k = base, 1
    while any(name in t for t in taken):
        name, k = f"{base}_{k}", k + 1
    return name


def _fmt_attr(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array{tuple(a.shape)}"
    if isinstance(a, float):
        return f"{a:g}"
    return repr(a)
