"""The pass manager: a registry of named passes and `Pipeline`, an editable ordered list of them.

A pass is a function (or a small class, instantiated once without arguments and then called)
``(graph, ctx, **options) -> Graph`` that returns a new graph and leaves its input untouched.
It registers under the name used in pipeline specs::

    @register_pass("adaprune")
    def adaprune_pass(graph: Graph, ctx: PassContext, *, flops: float = 0.5, epochs: int = 1) -> Graph: ...

Its keyword parameters with defaults are its options; the defaults give their types, which
spec strings are checked and converted against. A pass with many options declares them once as
a frozen dataclass instead (its fields and defaults are the options; ``__post_init__`` checks
values) and receives one instance::

    @register_pass("quantize", options=QuantizeOptions)
    def quantize_pass(graph: Graph, ctx: PassContext, options: QuantizeOptions) -> Graph: ...

so that the CLI, the driver and a target build the same typed object (`PassStep.of`), and each
default lives in one place. `Graph.verify` checks float and integer IR alike (it dispatches on
both op registries), so every pass, ``lower`` included, is verified the same way; a pass that
leaves invalid IR raises `InternalError` naming it.

`PassContext` carries what passes share: the calibration data, a seed, the torch device,
free-form ``state`` (e.g. results one pass leaves for a later one) and the per-stage timings
the pipeline records.

    pipeline = Pipeline.parse("canonicalize,quantize(method=lp,wbits=4)", verify=True, dump_dir="dump")
    out = pipeline.run(graph, PassContext(calib=x))       # or: pipeline.start(graph, ctx); pipeline.step() ...

The built-in passes live in `pqc.passes` and register when their module is imported; the
registry imports the modules in `BUILTIN_PASS_MODULES` on first use, so importing `pqc` stays
light.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import numpy as np

from .errors import InternalError, ModelError, PqcError
from .ir import Graph
from .quant import QUANT_KEY, ActQuant, WeightQuant

BUILTIN_PASS_MODULES = (
    "pqc.passes.canonicalize", "pqc.passes.quantize", "pqc.passes.rapq", "pqc.passes.lower", "pqc.passes.adaprune"
)
"""Modules that register the built-in passes (imported on first registry use)."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StageTiming:
    """Wall-clock seconds one pass took."""

    name: str
    seconds: float


@dataclass
class PassContext:
    """State shared by the passes of one pipeline run.

    ``calib``: calibration inputs (one array for a single-input graph, or a dict by input name);
    ``seed``: the seed every randomized pass derives its generator from; ``device``: the torch
    device for passes that run the float model; ``state``: what passes leave for later passes;
    ``timings``: one `StageTiming` per pass run, appended by the pipeline; ``checkpoint_dir``: a
    folder where long passes save their progress (None: they do not), and ``resume``: whether
    they continue from what it holds (`pqc.passes.rapq.checkpoint`).
    """

    calib: np.ndarray | Mapping[str, np.ndarray] | None = None
    seed: int = 0
    device: str = "cpu"
    checkpoint_dir: Path | None = None
    resume: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    timings: list[StageTiming] = field(default_factory=list)


@dataclass(frozen=True)
class PassInfo:
    """A registered pass: its callable and its options (name -> default; None when untyped)."""

    name: str
    fn: Callable[..., Graph]
    options: dict[str, Any]
    open_options: bool
    doc: str
    #: the options dataclass the pass receives as one argument (None: keyword options)
    options_type: type | None = None

    def call(self, graph: Graph, ctx: "PassContext", options: Mapping[str, Any]) -> Graph:
        """Run the pass on ``graph`` with checked ``options``."""
        if self.options_type is not None:
            return self.fn(graph, ctx, self.options_type(**options))
        return self.fn(graph, ctx, **options)


_REGISTRY: dict[str, PassInfo] = {}
_builtins_loaded = False


def register_pass(name: str, options: type | None = None) -> Callable[[F], F]:
    """Decorator registering a pass function or class under ``name`` (see the module doc);
    ``options``: the pass's options dataclass, when it takes one."""

    def decorate(obj: F) -> F:
        if name in _REGISTRY:
            raise RuntimeError(f"pass {name!r} registered twice")
        fn = obj() if inspect.isclass(obj) else obj
        params = list(inspect.signature(fn).parameters.values())
        if len(params) < 2 or params[0].kind not in _POSITIONAL or params[1].kind not in _POSITIONAL:
            raise TypeError(f"pass {name!r} must take (graph, ctx, **options)")
        if options is not None:
            declared = {f.name: f.default for f in dataclasses.fields(options)}
            open_options = False
        else:
            declared = {p.name: p.default for p in params[2:] if p.kind in _KEYWORD}
            open_options = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        missing = [k for k, v in declared.items() if v in (inspect.Parameter.empty, dataclasses.MISSING)]
        if missing:
            raise TypeError(f"pass {name!r}: options {missing} need defaults")
        doc = inspect.getdoc(obj) or ""
        _REGISTRY[name] = PassInfo(name, fn, declared, open_options, doc.split("\n\n")[0], options)
        return obj

    return decorate


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def registered_passes() -> dict[str, PassInfo]:
    """Every known pass by name (importing the built-in pass modules on first use)."""
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_PASS_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True
    return dict(_REGISTRY)


def get_pass(name: str) -> PassInfo:
    known = registered_passes()
    if name not in known:
        raise PqcError(f"unknown pass {name!r}; known passes: {', '.join(sorted(known)) or '(none)'}")
    return known[name]


# --------------------------------------------------------------------------- options
def check_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against pass ``name``'s declared options and converted to their types.

    Strings (as a spec gives them) are parsed: ``true``/``false``, ``none``, ints, floats,
    otherwise strings (optionally quoted). A value must then match its default's type (an int
    is accepted for a float option); a default of None accepts any value. An options dataclass
    also checks the values themselves.
    """
    info = get_pass(name)
    checked: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in info.options and not info.open_options:
            known = ", ".join(f"{k}={v!r}" for k, v in info.options.items()) or "(none)"
            raise PqcError(f"pass {name!r} has no option {key!r}; its options: {known}")
        value = parse_value(raw) if isinstance(raw, str) else raw
        checked[key] = _typed(name, key, value, info.options.get(key))
    if info.options_type is not None:
        info.options_type(**checked)  # its __post_init__ refuses bad values now, before any pass runs
    return checked


def parse_value(text: str) -> Any:
    """A spec option value: bool, None, int, float or string."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _typed(name: str, key: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and (expected is bool) == isinstance(value, bool):
        return value
    raise PqcError(f"pass {name!r} option {key!r} expects a {expected.__name__}, got {value!r}")


# --------------------------------------------------------------------------- specs
@dataclass
class PassStep:
    """One entry of a pipeline: a pass name and its (checked) options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, options: Any, fields: Iterable[str]) -> "PassStep":
        """The step running pass ``name`` with the listed ``fields`` of an options dataclass
        instance (the options a caller chose to spell out; the pass defaults the rest)."""
        return cls(name, check_options(name, {f: getattr(options, f) for f in fields}))

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}(" + ",".join(f"{k}={_spec_value(v)}" for k, v in self.options.items()) + ")"


def _spec_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, str) and (parse_value(value) != value or any(c in value for c in ",()='\" ")):
        return repr(value)
    return str(value)


_ITEM = re.compile(r"\s*([A-Za-z_][\w\-]*)\s*(?:\((.*)\))?\s*$", re.S)


def parse_spec(spec: str) -> list[PassStep]:
    """``"a,b(k=v,k2=v2),c"`` as checked `PassStep`s (PqcError on syntax, unknown names or
    options); an empty spec is an empty pipeline."""
    steps: list[PassStep] = []
    for item in _split_top(spec, ",", spec) if spec.strip() else []:
        if not item.strip():
            raise PqcError(f"pipeline spec {spec!r}: empty pass name")
        match = _ITEM.match(item)
        if match is None:
            raise PqcError(
                f"pipeline spec {spec!r}: cannot parse {item.strip()!r} (expected name or name(key=value,...))"
            )
        name, body = match.group(1), match.group(2)
        options: dict[str, str] = {}
        for pair in _split_top(body, ",", spec) if body and body.strip() else []:
            key, eq, value = pair.partition("=")
            if not eq or not key.strip():
                raise PqcError(f"pipeline spec {spec!r}: option {pair.strip()!r} of {name!r} is not key=value")
            options[key.strip()] = value
        steps.append(PassStep(name, check_options(name, options)))
    return steps


def _split_top(text: str, sep: str, spec: str) -> list[str]:
    """Split at ``sep`` outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise PqcError(f"pipeline spec {spec!r}: unbalanced ')'")
        elif ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if depth or quote:
        raise PqcError(f"pipeline spec {spec!r}: unclosed {'quote' if quote else '('}")
    parts.append("".join(current))
    return parts


# --------------------------------------------------------------------------- pipeline
class Pipeline:
    """An ordered, editable list of passes, run all at once or one step at a time.

    ``verify``: check the IR after each pass with ``graph.verify()`` (a failure names the pass).
    ``steps``: spec strings (``"quantize(wbits=4)"``) or `PassStep`s.
    ``dump_dir``: after each pass write ``NN_<pass>.txt`` (NN its 1-based position) holding
    `snapshot` of the graph.
    """

    def __init__(
        self,
        steps: Iterable[str | PassStep] = (),
        *,
        verify: bool = False,
        dump_dir: str | Path | None = None,
    ) -> None:
        self.steps: list[PassStep] = []
        for step in steps:
            if isinstance(step, str):
                self.steps.extend(parse_spec(step))
            else:
                self.append(step.name, **step.options)
        self.verify = verify
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.graph: Graph | None = None
        self.ctx: PassContext | None = None
        self.position = 0

    @classmethod
    def parse(cls, spec: str, **kwargs: Any) -> "Pipeline":
        pipeline = cls(**kwargs)
        pipeline.steps = parse_spec(spec)
        return pipeline

    # ----------------------------------------------------------------- editing
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def index(self, which: str | int) -> int:
        """Position of a step given by index or by name (its first occurrence)."""
        if isinstance(which, int):
            if not -len(self.steps) <= which < len(self.steps):
                raise PqcError(f"pipeline has {len(self.steps)} passes, no index {which}")
            return which % len(self.steps)
        if which not in self.names():
            raise PqcError(f"pipeline has no pass {which!r}; it has: {', '.join(self.names()) or '(none)'}")
        return self.names().index(which)

    def insert(self, index: int, name: str, **options: Any) -> None:
        self.steps.insert(index, PassStep(name, check_options(name, options)))

    def append(self, name: str, **options: Any) -> None:
        self.insert(len(self.steps), name, **options)

    def remove(self, which: str | int) -> PassStep:
        return self.steps.pop(self.index(which))

    def move(self, which: str | int, index: int) -> None:
        """Move a step so that it ends up at position ``index`` (negative: from the end)."""
        step = self.steps.pop(self.index(which))
        self.steps.insert(index if index >= 0 else len(self.steps) + 1 + index, step)

    def configure(self, which: str | int, **options: Any) -> None:
        """Set (override) options of one step."""
        step = self.steps[self.index(which)]
        step.options.update(check_options(step.name, options))

    # ----------------------------------------------------------------- running
    def start(self, graph: Graph, ctx: PassContext | None = None) -> None:
        """Begin a run on ``graph``: the next `step` applies the first pass."""
        self.graph, self.ctx, self.position = graph, ctx if ctx is not None else PassContext(), 0
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)

    @property
    def done(self) -> bool:
        return self.graph is not None and self.position >= len(self.steps)

    def step(self) -> Graph:
        """Apply the next pass to the current graph and return the new graph."""
        if self.graph is None or self.ctx is None:
            raise PqcError("pipeline not started: call start(graph) or run(graph) first")
        if self.done:
            raise PqcError("pipeline already ran all its passes")
        step = self.steps[self.position]
        info = get_pass(step.name)
        begin = time.perf_counter()
        graph = info.call(self.graph, self.ctx, step.options)
        self.ctx.timings.append(StageTiming(step.name, time.perf_counter() - begin))
        self.position += 1
        if self.verify:
            try:
                graph.verify()
            except ModelError as exc:  # the pass broke the IR: no input excuses that
                raise InternalError(f"pass {step.name!r} produced invalid IR: {exc}") from exc
        if self.dump_dir is not None:
            (self.dump_dir / f"{self.position:02d}_{step.name}.txt").write_text(snapshot(graph) + "\n")
        self.graph = graph
        return graph

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        """Apply every pass in order to ``graph``; returns the final graph."""
        self.start(graph, ctx)
        while not self.done:
            self.step()
        return self.graph

    @property
    def timings(self) -> list[StageTiming]:
        return list(self.ctx.timings) if self.ctx is not None else []

    def __str__(self) -> str:
        return ",".join(map(str, self.steps))

    def __repr__(self) -> str:
        return f"Pipeline.parse({str(self)!r})"

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[PassStep]:
        return iter(self.steps)


# --------------------------------------------------------------------------- snapshots
def snapshot(graph: Graph) -> str:
    """``str(graph)`` followed by each value's number format: its quantization annotation
    (float IR) or its ``meta["exp"]`` (integer IR)."""
    lines = [_format_line(name, v.dtype, v.meta) for name, v in graph.values.items()]
    lines = [line for line in lines if line]
    return "\n".join([str(graph)] + (["formats {", *lines, "}"] if lines else []))


def _format_line(name: str, dtype: str, meta: dict[str, Any]) -> str:
    q = meta.get(QUANT_KEY)
    if isinstance(q, ActQuant):
        return f"  %{name}: {'s' if q.signed else 'u'}{q.bits} * 2^{q.exp}"
    if isinstance(q, WeightQuant):
        exps = np.array2string(np.asarray(q.exps), max_line_width=10**6, threshold=16)
        return f"  @{name}: {q.fmt}{q.bits} out_axis={q.out_axis} exps={exps}"
    if "exp" in meta:
        return f"  %{name}: {dtype} * 2^{meta['exp']}"
    return ""
