"""ONNX conformance of the frontend and the float executor: the one list of cases and the one
way to run a case, shared by ``tests/test_conformance.py`` and ``SUPPORTED_OPS.md``.

Cases: every ``node`` case of ``onnx.backend.test`` (built in memory) and every on-disk
``simple``, ``pytorch-converted`` and ``pytorch-operator`` case whose op types are all in
`pqc.frontend.SUPPORTED_ONNX_OPS`.

Binding: conformance cases often pass weights (Conv W, Gemm B, BN statistics, Clip bounds,
Reshape shapes, ...) as graph inputs, where a deployed model has initializers. pqc needs those
operands constant, so before import every graph input that some node reads at an operand
position its importer declares constant (`Importer.bound_inputs`) becomes an initializer holding
the case's input data; the other inputs are fed at run time.

Outcome of a case: ``pass`` (imported, and `FloatExecutor` outputs match the expected ones within
rtol 1e-3, atol 1e-4), ``refused`` (import raised a `PqcError`; its message is kept) or ``fail``
(wrong numbers, or any other exception: a pqc bug).

    python -m pqc.conformance --write SUPPORTED_OPS.md
"""
from __future__ import annotations

import argparse
import collections
import functools
import glob
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import PqcError
from .executor import FloatExecutor
from .frontend import IMPORTERS, MAX_OPSET, MIN_OPSET, SUPPORTED_ONNX_OPS, load_onnx

RTOL, ATOL = 1e-3, 1e-4
ON_DISK_KINDS = ("simple", "pytorch-converted", "pytorch-operator")


@dataclass(frozen=True)
class Case:
    """One conformance case: a model, its input data (graph-input order) and expected outputs."""

    name: str
    kind: str
    model: onnx.ModelProto
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]

    @property
    def op_types(self) -> tuple[str, ...]:
        return tuple(sorted({n.op_type for n in self.model.graph.node}))


@dataclass(frozen=True)
class Result:
    """A case's outcome; ``detail`` holds the refusal message or what went wrong."""

    case: Case
    status: str  # "pass" | "refused" | "fail"
    detail: str = ""


@functools.lru_cache(maxsize=1)
def load_cases() -> tuple[Case, ...]:
    """All conformance cases whose op types pqc supports (built once per process)."""
    from onnx.backend.test.loader import load_model_tests

    supported = set(SUPPORTED_ONNX_OPS)
    cases: list[Case] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators warn about their own overflow tests
        node_tests = load_model_tests(kind="node")
        for test in node_tests:
            if test.model is None or not _ops_of(test.model) <= supported:
                continue
            inputs, outputs = test.data_sets[0]
            cases.append(Case(test.name, "node", test.model, tuple(inputs), tuple(outputs)))
        for kind in ON_DISK_KINDS:
            for test in load_model_tests(kind=kind):
                model = onnx.load(os.path.join(test.model_dir, "model.onnx"))
                if _ops_of(model) <= supported:
                    inputs, outputs = _read_data_set(os.path.join(test.model_dir, "test_data_set_0"))
                    cases.append(Case(test.name, kind, model, inputs, outputs))
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "conformance case names must be unique"
    return tuple(cases)


def _ops_of(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def _read_data_set(folder: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    def read(prefix: str) -> tuple[np.ndarray, ...]:
        paths = sorted(glob.glob(os.path.join(folder, f"{prefix}_*.pb")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
        return tuple(numpy_helper.to_array(onnx.load_tensor(p)) for p in paths)

    return read("input"), read("output")


def bind_constant_inputs(case: Case) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The case's model with operands pqc needs constant turned into initializers, and the
    feeds for the remaining graph inputs."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    runtime_inputs = [i.name for i in graph.input if i.name not in initialized]
    data = dict(zip(runtime_inputs, case.inputs))
    to_bind = {
        node.input[pos]
        for node in graph.node
        if node.op_type in IMPORTERS
        for pos in IMPORTERS[node.op_type].bound_inputs
        if pos < len(node.input) and node.input[pos] in data
    }
    graph.initializer.extend(numpy_helper.from_array(np.asarray(data[name]), name) for name in sorted(to_bind))
    if model.ir_version >= 4:  # before IR 4, every initializer must also be listed as a graph input
        kept = [i for i in graph.input if i.name not in to_bind]
        del graph.input[:]
        graph.input.extend(kept)
    return model, {name: np.asarray(array) for name, array in data.items() if name not in to_bind}


def run_case(case: Case) -> Result:
    """Import and run one case; never raises."""
    try:
        model, feeds = bind_constant_inputs(case)
        try:
            graph = load_onnx(model, name=case.name)
        except PqcError as exc:
            return Result(case, "refused", str(exc))
        got = FloatExecutor(graph).run(feeds)
        return _compare(case, [got[name] for name in graph.outputs])
    except Exception as exc:  # any other exception is a pqc bug: report it, do not stop the run
        return Result(case, "fail", f"{type(exc).__name__}: {exc}")


def _compare(case: Case, got: Sequence[np.ndarray]) -> Result:
    if len(got) != len(case.outputs):
        return Result(case, "fail", f"{len(got)} outputs, expected {len(case.outputs)}")
    for k, (actual, expected) in enumerate(zip(got, case.outputs)):
        if actual.shape != expected.shape:
            return Result(case, "fail", f"output {k}: shape {actual.shape}, expected {expected.shape}")
        if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
            err = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
            return Result(case, "fail", f"output {k}: max abs error {err:.3g} beyond rtol {RTOL}, atol {ATOL}")
    return Result(case, "pass")


def run_all() -> list[Result]:
    return [run_case(case) for case in load_cases()]


# --------------------------------------------------------------------------- the Markdown report
def short_reason(message: str) -> str:
    """A refusal message without names, dtypes and the list of supported ops, for grouping."""
    message = re.sub(r"^node '[^']*' \(([\w:.]+)\): ", "", message)
    message = message.split(" Supported ONNX ops:")[0]
    message = re.sub(r"\bdtype \w+", "dtype …", message)
    return re.sub(r"'[^']*'", "…", message).rstrip(".")


def markdown(results: Sequence[Result]) -> str:
    """The SUPPORTED_OPS.md text: per-op counts and refusal reasons, totals, unsupported ops."""
    per_op: dict[str, collections.Counter] = {op: collections.Counter() for op in SUPPORTED_ONNX_OPS}
    reasons: dict[str, collections.Counter] = {op: collections.Counter() for op in SUPPORTED_ONNX_OPS}
    for r in results:
        for op in r.case.op_types:
            per_op[op][r.status] += 1
            if r.status != "pass":
                reasons[op][short_reason(r.detail) if r.status == "refused" else f"FAIL {r.case.name}: {r.detail}"] += 1
    totals = collections.Counter(r.status for r in results)
    lines = [
        "# Supported ONNX ops",
        "",
        "Generated by `python -m pqc.conformance --write SUPPORTED_OPS.md` from the ONNX conformance cases",
        "(`onnx.backend.test`: every `node` case, and the on-disk `simple`, `pytorch-converted` and",
        "`pytorch-operator` cases, whose op types are all supported). A case counts under each op type",
        "it contains. `pass`: imported, and the float executor matches the expected outputs (rtol 1e-3,",
        "atol 1e-4); `refused`: the frontend raised a clear `PqcError`; `fail`: a bug.",
        "",
        "Cases pass weights, bounds, shapes and axes as graph inputs; the harness binds every graph",
        "input that an op needs constant as an initializer holding the case's data (see",
        "`pqc/conformance.py`). Constant, ConstantOfShape and Shape (of a statically shaped tensor) are",
        "folded at import, as is any other op whose operands are all constants.",
        "",
        f"Import rules: default-domain opsets {MIN_OPSET} to {MAX_OPSET}; float32 tensors only; static shapes except a",
        "symbolic batch (axis 0 of the inputs, imported as 1), and then no op may act on axis 0; 1-D Conv and",
        "pools run as 2-D on a unit-height view; hard-swish in its exported forms (`x * HardSigmoid(x)`,",
        "`x * Clip(x + 3, 0, 6) / 6`, ...) imports as HardSwish; Sum as a chain of Adds; Mul may multiply",
        "two activations (lowered when one is a per-channel gate of at most 8 bits); MatMul needs one constant operand, Div a constant divisor.",
        "",
        "| ONNX op | cases | pass | refused | fail | refusal reasons (count) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for op in SUPPORTED_ONNX_OPS:
        c = per_op[op]
        why = "; ".join(f"{reason} ({n})" for reason, n in sorted(reasons[op].items()))
        lines.append(f"| {op} | {sum(c.values())} | {c['pass']} | {c['refused']} | {c['fail']} | {why.replace('|', '/')} |")
    lines += [
        f"| **total (cases counted once)** | {len(results)} | {totals['pass']} | {totals['refused']} | {totals['fail']} | |",
        "",
        "## Unsupported ONNX op types",
        "",
        ", ".join(_unsupported_ops()),
        "",
    ]
    return "\n".join(lines)


def _unsupported_ops() -> list[str]:
    default_domain = {s.name for s in onnx.defs.get_all_schemas() if s.domain == "" and not s.deprecated}
    return sorted(default_domain - set(SUPPORTED_ONNX_OPS))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pqc.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", metavar="PATH", help="write the Markdown report to PATH")
    args = parser.parse_args(argv)
    results = run_all()
    text = markdown(results)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
    totals = collections.Counter(r.status for r in results)
    print(f"{len(results)} cases: {totals['pass']} pass, {totals['refused']} refused, {totals['fail']} fail")
    for r in results:
        if r.status == "fail":
            print(f"FAIL {r.case.name}: {r.detail}")
    return 1 if totals["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
