"""The shift-accel C emitter: an integer graph -> ``<prefix>.h``, ``<prefix>.c``, ``main.c``, ``Makefile``.

Each integer node renders its kernel's template (`pqc.backends.kernels.kernel_for`: the variant
chosen for the node, else its op's default) with the dict the kernel's ``c_context`` returns, as one ``static`` function per layer with every shape baked in
(TinyEngine style), so loops run on constants and pointer increments only. This module only
does what is common to all ops: naming and placing the constant tables, planning the arena
(`pqc.backends.memory_plan`), wiring the layer calls, adding the runtime helpers the kernels use,
and writing the files. The multiplier-free and UB-free rules the templates follow are listed in
``codegen_templates/model.c.j2``.

The contract between a kernel and this module (what adding a kernel needs):

* ``c_context(node, graph)`` returns the template's variables. Every `CArray` value is a
  constant table: it is named ``<fn>_<key>``, declared in the weight section and counted in
  the weight bytes. ``scratch_bytes`` > 0 reserves a buffer live only during the node (its
  kernel's copy of input rows: a row band or a padded plane), passed as the kernel's last argument.
  ``writes_over_input`` True says the kernel reads every input element it needs before it writes
  an output element at or past it, so its output may share its first input's storage (the
  planner does so when nothing reads that input later).
* The template defines ``static void <fn>(const T *x0, ..., T *y[, T *scratch])``: one pointer
  per non-constant input in ``node.inputs`` order, then the output. It also sees ``node``,
  ``x`` and ``y`` (dtype, C type, shape, size, exponent of each) and ``digits`` (the op's
  nonzero constant-multiplier digits, from its cost), and may call the runtime
  helpers of ``runtime.c.j2`` (``pqc_requant``, ``pqc_mulc``, ...), emitted only when used.

Besides the C, the folder gets ``manifest.json``: the input/output/layer layout the harness
(`pqc.backends.harness`) needs to read the test binary's raw outputs and per-layer dumps.

The entry point (`io_tensors`): a graph with one input and one output keeps the API
``<prefix>_run(const <prefix>_input_t *input, <prefix>_output_t *output)`` with the
``<PREFIX>_INPUT_*``/``<PREFIX>_OUTPUT_*`` defines. A graph with several takes one pointer per
graph input, then one per graph output, in graph order, each named after its ONNX name made a C
identifier (``box.out`` -> ``box_out``), of type ``<prefix>_<name>_t`` and described by
``<PREFIX>_<NAME>_*`` defines (the single-I/O names are not emitted then: no single-I/O caller
compiles against that signature anyway).
"""
from __future__ import annotations

import importlib.resources
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from ..errors import InternalError, ModelError, PqcError
from ..ir import Graph, Node
from ..intmath import value_range
from ..intops import INT_OPS, get_int_op
from .kernels import kernel_for
from .memory_plan import (
    INPUT,
    MemoryPlan,
    check_plan,
    plan_memory,
    poison_ranges,
    scratch_name,
    storage_roots,
    value_bytes,
)
from .activation_layout import packed_bits, signed_fields
from .c_tables import CTYPES, CArray, c_int, table_bytes
from .memory_report import StepMemory, kernel_stack_bytes, step_memory
from .streaming import is_fed, stream_position, streamed_values, streams

#: the kernel templates, shipped as package data of ``pqc.codegen_templates``
TEMPLATES = Path(str(importlib.resources.files("pqc.codegen_templates")))
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MANIFEST = "manifest.json"
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")
#: characters a C string literal of a name may hold as they are (no quote, backslash or ``?``, so
#: no escape and no trigraph)
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,:;/+=<>()[]{}#")
#: words an entry point parameter may not be: C and C++ keywords (the header is includable from
#: C++) and the names model.c itself uses inside the entry point
_RESERVED = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline int
    long register restrict return short signed sizeof static struct switch typedef union unsigned void
    volatile while alignas alignof and and_eq asm bitand bitor bool catch class compl concept constexpr
    consteval constinit co_await co_return co_yield decltype delete dynamic_cast explicit export false
    friend mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    reinterpret_cast requires static_assert static_cast template this thread_local throw true try typeid
    typename using virtual xor xor_eq const_cast wchar_t arena workspace
""".split())


@dataclass(frozen=True)
class LayerReport:
    """One layer's line of the memory report (adds and shifts per inference, from the op cost)."""

    node: str
    op: str
    kernel: str
    output: str
    adds: int
    shifts: int
    digits: int
    weight_bytes: int
    output_bytes: int


@dataclass(frozen=True)
class MemoryReport:
    """Flash and RAM of the generated model: weights as stored, arena (and the most bytes live at
    once, the bound no placement of this schedule beats), and the caller's buffers."""

    weight_bytes: int
    arena_bytes: int
    arena_lower_bound_bytes: int
    input_bytes: int
    output_bytes: int
    adds: int
    shifts: int
    digits: int
    layers: tuple[LayerReport, ...]
    #: the live set of every schedule step (`pqc.backends.memory_report.step_memory`)
    steps: tuple[StepMemory, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CDefine:
    """A ``#define`` of the header: one integer, or a shape as a brace list."""

    name: str
    values: tuple[int, ...]
    is_list: bool = False

    @property
    def text(self) -> str:
        return "{ " + ", ".join(map(str, self.values)) + " }" if self.is_list else c_int(self.values[0])


@dataclass(frozen=True)
class ArenaBuffer:
    """The ``#define`` that names one arena buffer in the generated C, for readable calls."""

    macro: str
    ctype: str
    offset: int
    bytes: int
    what: str


@dataclass(frozen=True)
class Constants:
    """What the emitted C must hold for a program: every table by name, every header define."""

    tables: dict[str, CArray]
    defines: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class EmitResult:
    """The files written and the memory report."""

    out_dir: Path
    header: Path
    source: Path
    main: Path
    makefile: Path
    manifest: Path
    memory: MemoryReport
    plan: MemoryPlan | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.header, self.source, self.main, self.makefile, self.manifest)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["c_int"] = c_int
    env.filters["mentions"] = lambda code, ident: re.search(rf"\b{re.escape(ident)}\b", code) is not None
    return env


def storage_ctype(value: Any) -> str:
    """The C element type of a value's storage: bytes of fields when packed, else its own."""
    return "uint8_t" if packed_bits(value) else CTYPES[value.dtype]


def _io_value(graph: Graph, name: str) -> dict[str, Any]:
    """A value as the templates and the manifest see it: ``ctype`` the C type of one element,
    ``packed`` its field width when packed (0: not), ``ptype`` the element type of its storage."""
    v = graph.values[name]
    qmin, qmax = value_range(v)
    return {
        "name": name,
        "shape": list(v.shape),
        "dtype": v.dtype,
        "ctype": CTYPES[v.dtype],
        "packed": packed_bits(v),
        "ptype": storage_ctype(v),
        "size": v.size,
        "exp": int(v.meta.get("exp", 0)),
        "bits": int(v.meta["bits"]),
        "qmin": qmin,
        "qmax": qmax,
    }


def _param_name(name: str, prefix: str) -> str:
    """An ONNX name as a C parameter name: other characters become ``_``; a name C reserves, that
    clashes with the generated code's own (``<prefix>_*``, ``pqc_*``, ``BUF_*``, ``*_t``, the
    <stdint.h> macros) or starts with a digit or ``_`` gets an ``x_`` (or ``y_``) in front."""
    base = _NOT_IDENT.sub("_", name) or "v"

    def bad(c: str) -> bool:
        return (c in _RESERVED or not c[0].isalpha() or c.endswith("_t")
                or c.lower().startswith((prefix.lower() + "_", "pqc_", "buf_"))
                or c.startswith(("INT", "UINT", "PTRDIFF", "SIZE_", "SIG_ATOMIC", "WCHAR", "WINT")))

    return next(c for c in (base, f"x_{base}", f"y_{base}") if not bad(c))


def io_tensors(graph: Graph, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entry point's inputs and outputs, in graph order: each value's `_io_value` plus its
    C parameter name (``id``), element typedef (``type``) and define prefix (``macro``)."""
    up = prefix.upper()
    if len(graph.inputs) == 1 and len(graph.outputs) == 1:
        return ([{**_io_value(graph, graph.inputs[0]), "id": "input", "type": f"{prefix}_input_t", "macro": f"{up}_INPUT"}],
                [{**_io_value(graph, graph.outputs[0]), "id": "output", "type": f"{prefix}_output_t",
                  "macro": f"{up}_OUTPUT"}])
    taken: set[str] = set()
    sides: list[list[dict[str, Any]]] = [[], []]
    for side, names in zip(sides, (graph.inputs, graph.outputs)):
        for name in names:
            base = _param_name(name, prefix)
            ident = next(c for c in (base, *(f"{base}_{i}" for i in range(2, len(taken) + 3))) if c.upper() not in taken)
            taken.add(ident.upper())
            side.append({**_io_value(graph, name), "id": ident, "type": f"{prefix}_{ident}_t",
                         "macro": f"{up}_{ident.upper()}"})
    return sides[0], sides[1]


def _check_graph(graph: Graph, prefix: str) -> None:
    if not _IDENT.match(prefix):
        raise PqcError(f"C prefix {prefix!r} is not a C identifier")
    if not graph.inputs or not graph.outputs:
        raise ModelError(f"graph {graph.name!r} has {len(graph.inputs)} input(s) and {len(graph.outputs)} "
                         f"output(s); the C entry point needs at least one of each")
    # What lowering guarantees: a program breaking it is a pqc bug, not a user's model.
    for name in graph.activations():
        if graph.values[name].dtype not in CTYPES:
            raise InternalError(f"value {name!r} has dtype {graph.values[name].dtype}; the C supports {sorted(CTYPES)}")
    for node in graph.nodes:
        if node.op not in INT_OPS or len(node.outputs) != 1:
            raise InternalError(f"node {node.name!r} ({node.op}) is not an integer op with one output")
    roots = storage_roots(graph, in_place=False)
    seen: dict[str, str] = {}
    for out in graph.outputs:
        if roots[out] in graph.inputs:
            raise ModelError(f"graph {graph.name!r} computes nothing for output {out!r}: it is its input {roots[out]!r}")
        if roots[out] in seen:
            raise ModelError(f"outputs {seen[roots[out]]!r} and {out!r} of graph {graph.name!r} share their storage "
                             f"(one is the other, or a reshape of it); the C entry point writes each to its own array")
        seen[roots[out]] = out


class _Emitter:
    """Builds the text of the generated files for one graph."""

    def __init__(self, graph: Graph, prefix: str) -> None:
        self.graph, self.prefix, self.env = graph, prefix, _environment()
        self.contexts: dict[str, dict[str, Any]] = {}
        #: each node's op cost, computed once (the kernel comments and the memory report read it)
        self.costs = {node.name: get_int_op(node.op).cost(node, graph) for node in graph.nodes}
        self.tables: list[CArray] = []
        for i, node in enumerate(graph.nodes):
            fn = f"{prefix}_l{i}_{node.op.lower()}"
            ctx = dict(kernel_for(node, graph).c_context(node, graph))
            for key, val in sorted(ctx.items()):
                if isinstance(val, CArray):
                    ctx[key] = CArray(val.ctype, val.values, f"{fn}_{key}")
                    self.tables.append(ctx[key])
            ctx["fn"] = fn
            self.contexts[node.name] = ctx
        self.scratch = {n: int(c.get("scratch_bytes", 0)) for n, c in self.contexts.items()}
        overwrites = [n for n, c in self.contexts.items() if c.get("writes_over_input")]
        self.plan: MemoryPlan = plan_memory(graph, self.scratch, overwrites=overwrites)
        check_plan(graph, self.plan, self.scratch)
        self.buffers = _arena_buffers(graph, self.plan)
        self.inputs, self.outputs = io_tensors(graph, prefix)
        self.io = {t["name"]: t for t in self.inputs + self.outputs}
        self.streams = streams(graph)
        self.nodes = {node.name: node for node in graph.nodes}

    def pointer(self, name: str, ctype: str | None = None) -> str:
        """The C expression of a value's storage, or of a scratch buffer of element type ``ctype``.

        A value computed in the caller's output array before an in-place op rewrites it there
        may have another C type of the same size than the output: it gets a cast.
        """
        ctype = ctype or storage_ctype(self.graph.values[name])
        where = self.plan.external.get(name)
        if where is None:
            return self.buffers[name].macro
        io = self.io[self.plan.io[name]]
        if ctype == io["ctype"]:
            return io["id"]
        qual = "const " if where == INPUT else ""
        return f"(({qual}{ctype} *)({qual}void *){io['id']})"

    def activations(self, node: Node) -> list[str]:
        """The node's non-constant inputs: the kernel's pointer parameters, in order."""
        return [i for i in node.inputs if i and not self.graph.values[i].is_const]

    def kernel(self, node: Node) -> str:
        view = {
            "node": node.name,
            "digits": self.costs[node.name]["digits"],
            "x": [_io_value(self.graph, i) for i in self.activations(node)],
            "y": _io_value(self.graph, node.outputs[0]),
            "y_plane": self.y_plane(node),
            "fed": False,
            "streamed": stream_position(node) is not None,
            **self.contexts[node.name],
        }
        return self.env.get_template(kernel_for(node).template).render(view).strip() + "\n"

    def consumer(self, node: Node) -> Node | None:
        """The next node of the node's stream, which its rows feed; None outside a stream or at its end."""
        where = stream_position(node)
        chain = self.streams[where[0]] if where else ()
        return self.nodes[chain[where[1] + 1]] if where and where[1] + 1 < len(chain) else None

    def y_plane(self, node: Node) -> int:
        """Elements between the output channels a kernel writes: the output's planes, or those of
        the band (a conv's, ``plane``) or row buffer (an add's, ``w``) its rows feed in a stream."""
        consumer = self.consumer(node)
        if consumer is not None:
            ctx = self.contexts[consumer.name]
            return int(ctx["plane"] if consumer.op == "QConv" else ctx["w"])
        return int(np.prod(self.graph.values[node.outputs[0]].shape[2:], dtype=np.int64))

    def scratch_pointer(self, node: Node) -> str:
        return self.pointer(scratch_name(node.name), CTYPES[self.graph.values[scratch_value(self.graph, node)].dtype])

    def calls(self) -> list[dict[str, Any]]:
        """The entry point's steps: one call per layer, or per stream (at its first node, the
        layer hook after its last node, whose output is the only one stored)."""
        out = []
        for step, node in enumerate(self.graph.nodes):
            y = node.outputs[0]
            where = stream_position(node)
            call = {"step": step, "node": node.name, "name": c_string(node.name),
                    "out": None if y in streamed_values(self.graph) else self.pointer(y),
                    "bytes": value_bytes(self.graph, y), "before": True, "after": True, "args": [], "stream": None}
            if where is None:
                call["fn"] = None if get_int_op(node.op).aliases_input else self.contexts[node.name]["fn"]
                call["args"] = [self.pointer(i) for i in [*self.activations(node), y]]
                if self.scratch[node.name] > 0:
                    call["args"].append(self.scratch_pointer(node))
            else:
                chain = self.streams[where[0]]
                call.update(fn=f"{self.prefix}_s{where[0]}" if where[1] == 0 else None, before=where[1] == 0,
                            after=where[1] == len(chain) - 1, stream=chain)
                if where[1] == 0:
                    call["args"] = self.stream_args(chain)
            out.append(call)
        return out

    def stream_args(self, chain: tuple[str, ...]) -> list[str]:
        """The arguments of a stream's driver, in `stream_view`'s ``params`` order."""
        head, last = self.nodes[chain[0]], self.nodes[chain[-1]]
        args = [self.pointer(head.inputs[0])]
        if last.op == "QAdd":
            args.append(self.pointer(self.stored_operand(last)))
        args.append(self.pointer(last.outputs[0]))
        return args + [self.scratch_pointer(self.nodes[n]) for n in chain if self.scratch[n] > 0]

    def stored_operand(self, add: Node) -> str:
        return next(i for i in self.activations(add) if i not in streamed_values(self.graph))

    def stream_view(self, index: int, chain: tuple[str, ...]) -> dict[str, Any]:
        """What ``stream.c.j2`` renders the driver of stream ``index`` from."""
        nodes = []
        for pos, name in enumerate(chain):
            node, ctx = self.nodes[name], self.contexts[name]
            x = _io_value(self.graph, node.inputs[0])
            y = _io_value(self.graph, node.outputs[0])
            row = {"name": c_string(name)[1:-1], "fn": ctx["fn"], "ytype": y["ptype"]}
            if node.op == "QAdd":
                fed = [i in streamed_values(self.graph) for i in node.inputs[:2]]
                stored = _io_value(self.graph, self.stored_operand(node))
                row.update(kind="add", fed_input=fed.index(True), stored_type=stored["ptype"],
                           btype=CTYPES[self.graph.values[node.inputs[fed.index(True)]].dtype],
                           oh=self.graph.values[node.outputs[0]].shape[2], ow=self.graph.values[node.outputs[0]].shape[3])
            else:
                row.update(kind="conv", xtype=x["ptype"], btype=x["ctype"], band=bool(ctx["band"]),
                           borders=ctx["pad_l"] + ctx["pad_r"] > 0 if ctx["band"] else False,
                           sh=node.attrs["strides"][0], in_row_step=ctx["in_row_step"], pad_t=ctx["pad_t"],
                           pad_l=ctx.get("pad_l", 0), w=ctx["w"], h=ctx["h"], rows=ctx["band_rows"], wp=ctx["wp"],
                           oh=ctx["oh"], ow=ctx["ow"])
            nodes.append(row)
        params = [f"const {nodes[0]['xtype']} *x"]
        if nodes[-1]["kind"] == "add":
            params.append(f"const {nodes[-1]['stored_type']} *stored")
        params.append(f"{nodes[-1]['ytype']} *y")
        if self.scratch[chain[0]] > 0:
            params.append(f"{nodes[0]['btype']} *band0")
        params += [f"{n['btype']} *feed{i}" for i, n in enumerate(nodes) if i > 0]
        return {"fn": f"{self.prefix}_s{index}", "nodes": nodes, "params": params}

    def layer_reports(self) -> tuple[LayerReport, ...]:
        rows = []
        for node in self.graph.nodes:
            cost = self.costs[node.name]
            rows.append(LayerReport(
                node=node.name,
                op=node.op,
                kernel=kernel_for(node).name,
                output=node.outputs[0],
                adds=int(cost["adds"]),
                shifts=int(cost["shifts"]),
                digits=int(cost["digits"]),
                weight_bytes=table_bytes(self.contexts[node.name]),
                output_bytes=value_bytes(self.graph, node.outputs[0]),
            ))
        return tuple(rows)

    def memory_report(self) -> MemoryReport:
        g = self.graph
        layers = self.layer_reports()
        return MemoryReport(
            weight_bytes=sum(t.nbytes for t in self.tables),
            arena_bytes=self.plan.arena_bytes,
            arena_lower_bound_bytes=self.plan.arena_lower_bound_bytes,
            input_bytes=sum(value_bytes(g, i) for i in g.inputs),
            output_bytes=sum(value_bytes(g, o) for o in g.outputs),
            adds=sum(r.adds for r in layers),
            shifts=sum(r.shifts for r in layers),
            digits=sum(r.digits for r in layers),
            layers=layers,
            steps=step_memory(g, self.plan),
        )

    def common(self, memory: MemoryReport) -> dict[str, Any]:
        """What every generated file is rendered with, the header's defines included."""
        g = self.graph
        common = {
            "prefix": self.prefix,
            "PREFIX": self.prefix.upper(),
            "graph": g.name,
            "input": self.inputs[0],
            "output": self.outputs[0],
            "inputs": self.inputs,
            "outputs": self.outputs,
            "params": ", ".join([f"const {t['type']} *{t['id']}" for t in self.inputs]
                                + [f"{t['type']} *{t['id']}" for t in self.outputs]),
            "args": ", ".join(t["id"] for t in self.inputs + self.outputs),
            "memory": memory,
        }
        common["defines"] = header_defines(common)
        return common

    def render(self) -> tuple[dict[str, str], MemoryReport]:
        kernels = [self.kernel(n) for n in self.graph.nodes]
        kernels += [self.env.get_template("stream.c.j2").render(self.stream_view(i, chain)).strip() + "\n"
                    for i, chain in enumerate(self.streams)]
        memory = self.memory_report()
        common = self.common(memory)
        body = "\n".join(kernels)
        files = {
            f"{self.prefix}.h": self.env.get_template("model.h.j2").render(common),
            f"{self.prefix}.c": self.env.get_template("model.c.j2").render(
                common,
                runtime=self.runtime(body),
                buffers=sorted(set(self.buffers.values()), key=lambda b: (b.offset, b.macro)),
                tables=self.tables,
                kernels=kernels,
                calls=self.calls(),
                poison=self.poison(common),
            ),
            "main.c": self.env.get_template("main.c.j2").render(common),
            "Makefile": self.env.get_template("Makefile.j2").render(common),
            MANIFEST: self.manifest(common) + "\n",
        }
        return files, memory

    def poison(self, common: dict[str, Any]) -> str:
        """The ``<PREFIX>_POISON_ARENA`` debug block: per layer, the arena ranges that hold nothing it
        or a later layer reads (`pqc.backends.memory_plan.poison_ranges`)."""
        ranges: list[int] = []
        first = [0]
        for step in range(len(self.graph.nodes)):
            ranges += [b for r in poison_ranges(self.plan, step) for b in r]
            first.append(len(ranges))
        return self.env.get_template("poison_arena.c.j2").render(common, ranges=ranges, first=first)

    def runtime(self, code: str) -> str:
        """The runtime helpers ``code`` calls, with the helpers they call in turn (an unused
        ``static`` function is a warning under clang, so only these are emitted)."""
        template = self.env.get_template("runtime.c.j2")
        used: set[str] = set()
        while True:
            text = template.render(used=used)
            found = set(re.findall(r"\b(pqc_\w+)\(", code + text))
            if found <= used:
                return text
            used |= found

    def manifest(self, common: dict[str, Any]) -> str:
        g = self.graph
        layers = [
            {"node": n.name, "op": n.op, "value": n.outputs[0], "shape": list(g.values[n.outputs[0]].shape),
             "dtype": g.values[n.outputs[0]].dtype, "packed": packed_bits(g.values[n.outputs[0]]),
             "packed_signed": signed_fields(g.values[n.outputs[0]]),
             "stored": n.outputs[0] not in streamed_values(g)}
            for n in g.nodes
        ]
        data = {
            "prefix": self.prefix,
            "binary": f"{self.prefix}_test",
            "input": common["input"],
            "output": common["output"],
            "inputs": common["inputs"],
            "outputs": common["outputs"],
            "arena_bytes": self.plan.arena_bytes,
            "kernel_stack_bytes": kernel_stack_bytes(self.graph),
            "layers": layers,
        }
        return json.dumps(data, indent=1, sort_keys=True)


def header_defines(common: dict[str, Any]) -> list[CDefine]:
    """The ``#define``s of ``<prefix>.h``: one list, so the header, the harness's ``main.c`` that
    prints them and the check that compares them with the program cannot drift apart."""
    up = common["PREFIX"]
    rows = []
    for io in common["inputs"] + common["outputs"]:
        name = io["macro"]
        rows += [
            CDefine(f"{name}_RANK", (len(io["shape"]),)),
            CDefine(f"{name}_SHAPE", tuple(io["shape"]), is_list=True),
            CDefine(f"{name}_SIZE", (io["size"],)),
            CDefine(f"{name}_EXP", (io["exp"],)),
            CDefine(f"{name}_BITS", (io["bits"],)),
            CDefine(f"{name}_MIN", (io["qmin"],)),
            CDefine(f"{name}_MAX", (io["qmax"],)),
        ]
    memory = common["memory"]
    return rows + [CDefine(f"{up}_ARENA_BYTES", (memory.arena_bytes,)),
                   CDefine(f"{up}_WEIGHT_BYTES", (memory.weight_bytes,))]


def c_string(text: str) -> str:
    """``text`` as a C string literal; every byte outside a plain set is an octal escape (so no
    quote, backslash, trigraph or encoding issue reaches the compiler)."""
    return '"' + "".join(ch if ch in _PLAIN else "".join(f"\\{b:03o}" for b in ch.encode("utf-8"))
                         for ch in text) + '"'


def _comment_safe(text: str) -> str:
    return text.replace("*/", "* /")


def scratch_value(graph: Graph, node: Node) -> str:
    """The value whose elements a node's scratch holds: its streamed input's rows (a fed band or
    row buffer, `pqc.backends.streaming`), else its first input's (a band or padded copy)."""
    return next((i for i in node.inputs if i in streamed_values(graph)), node.inputs[0])


def _arena_buffers(graph: Graph, plan: MemoryPlan) -> dict[str, ArenaBuffer]:
    """A macro per arena buffer (``BUF_<value>``, the name made a C identifier and unique), so
    the layer calls read as data flow instead of bare offsets."""
    scratch_of = {scratch_name(n.name): n for n in graph.nodes}
    taken: set[str] = set()
    out: dict[str, ArenaBuffer] = {}
    for name in sorted(plan.buffers):
        offset, nbytes = plan.buffers[name]
        base = "BUF_" + _NOT_IDENT.sub("_", name)
        macro = next(m for m in (base, *(f"{base}_{i}" for i in range(2, len(plan.buffers) + 2))) if m not in taken)
        taken.add(macro)
        if name in scratch_of:
            node = scratch_of[name]
            ctype = CTYPES[graph.values[scratch_value(graph, node)].dtype]
            what = f"scratch (input band, padded copy or row buffer) of {node.name}"
        else:
            v = graph.values[name]
            ctype, root = storage_ctype(v), plan.roots.get(name, name)
            what = f"{name}, {v.dtype} {list(v.shape)}" + (f", shares {root}" if root != name else "")
        out[name] = ArenaBuffer(macro, ctype, offset, nbytes, _comment_safe(what))
    return out


def planned_memory(int_graph: Graph, prefix: str = "model") -> MemoryPlan:
    """The arena plan `emit_c` makes for ``int_graph`` (its kernels' scratch included); nothing is written."""
    _check_graph(int_graph, prefix)
    return _Emitter(int_graph, prefix).plan


def emitted_constants(int_graph: Graph, prefix: str = "model") -> Constants:
    """The tables and header defines `emit_c` writes for ``int_graph``: what the harness checks
    the compiled C against (a table or define edited after emission is then caught by name)."""
    _check_graph(int_graph, prefix)
    emitter = _Emitter(int_graph, prefix)
    defines = emitter.common(emitter.memory_report())["defines"]
    return Constants({t.name: t for t in emitter.tables}, {d.name: d.values for d in defines})


def emit_c(int_graph: Graph, out_dir: str | Path, prefix: str = "model") -> EmitResult:
    """Write the C model, test harness and Makefile for ``int_graph`` into ``out_dir``.

    Same graph, same bytes: nothing in the output depends on time, paths or hash order.
    """
    _check_graph(int_graph, prefix)
    emitter = _Emitter(int_graph, prefix)
    files, memory = emitter.render()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PqcError(f"cannot write the generated C to {str(out)!r}: {exc.strerror or exc}") from exc
    return EmitResult(
        out_dir=out,
        header=out / f"{prefix}.h",
        source=out / f"{prefix}.c",
        main=out / "main.c",
        makefile=out / "Makefile",
        manifest=out / MANIFEST,
        memory=memory,
        plan=emitter.plan,
    )


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The layout `emit_c` recorded in ``out_dir`` (PqcError when there is none); a manifest
    with only ``input``/``output`` (the int8 yardstick's) gets the single-I/O ``inputs``/``outputs``."""
    path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PqcError(f"{str(Path(out_dir))!r} holds no generated C ({MANIFEST} missing); run emit_c first") from exc
    prefix = manifest["prefix"]
    for side in ("input", "output"):
        if f"{side}s" not in manifest:
            manifest[f"{side}s"] = [{**manifest[side], "id": side, "type": f"{prefix}_{side}_t",
                                     "macro": f"{prefix.upper()}_{side.upper()}"}]
    return manifest
