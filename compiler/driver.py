"""`compile_model`: ONNX (or a Graph) -> verified C in a build folder, with its report.

Stages: import, the target's pass pipeline (verified after each pass; optional snapshots),
C emission, per-layer error measurement, verification of the C against the simulator, the
report. The build folder then holds everything later commands need:

    <prefix>.c, <prefix>.h, main.c, Makefile    the generated C and its test harness
    program.json, program.npz                   the integer program (the simulator's input)
    float.onnx                                  the float model the program was quantized from
    report.json, report.md                      what was built and measured
    timings.json                                seconds per stage (the only file that differs
                                                between two identical compiles)

The folder is written through `pqc.build_folder.staged_folder`: it appears complete or not at
all. `pqc verify`, `pqc run` and `pqc evaluate` work from the folder alone (`load_build`), and
refuse one that lacks any of these files.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import console
from .build_folder import require_files, staged_folder
from .data_checks import check_samples, checked_inputs, checked_labelled
from .errors import PqcError, VerificationError
from .ir import Graph
from .pipeline import PassContext, Pipeline
from .quant import WeightQuant, get_quant
from .report import layer_errors, weight_digits, write_report
from .serialize import load_graph, save_graph
from .targets import get_target

if TYPE_CHECKING:  # pragma: no cover
    from .data import Dataset

PROGRAM = "program"
FLOAT_MODEL = "float.onnx"
TIMINGS = "timings.json"
#: what every complete build folder holds besides the C model files named in its manifest
BUILD_FILES = (f"{PROGRAM}.json", f"{PROGRAM}.npz", FLOAT_MODEL, "manifest.json", "main.c", "Makefile",
               "report.json", "report.md", TIMINGS)
#: calibration samples the per-layer SQNR/clip figures are measured on
ERROR_SAMPLES = 64
#: random int8 inputs verification adds to the user's (they reach saturation corners)
RANDOM_VERIFY_SAMPLES = 8


@dataclass
class Build:
    """A compiled model: its folder, integer program and float reference."""

    out_dir: Path
    program: Graph
    float_graph: Graph
    report: dict[str, Any] = field(default_factory=dict)


def compile_model(
    model: str | Path | Graph,
    out_dir: str | Path,
    *,
    target: str = "shift-accel",
    calib: str | np.ndarray | None = "fashion-mnist:train:256",
    method: str = "lp",
    wbits: int = 8,
    abits: int = 8,
    weight_format: str = "int",
    first_last_bits: int = 8,
    mode: str = "quick",
    iters: int = 0,
    calib_size: int = 256,
    prune_flops: float | None = None,
    train: str = "fashion-mnist:train",
    prune_epochs: int = 1,
    pipeline: str | None = None,
    prefix: str = "model",
    seed: int = 0,
    device: str = "cpu",
    dump_ir: str | Path | None = None,
    verify: bool = True,
    verify_inputs: str | np.ndarray | None = None,
    eval_data: str | None = None,
    force: bool = False,
) -> Build:
    """Compile ``model`` for ``target`` into ``out_dir``; return the `Build` (report included).

    ``pipeline`` overrides the target's default spec (e.g. ``"canonicalize,quantize(wbits=4),
    lower"``). With ``verify`` the C is built and compared bit-exactly with the simulator on
    ``verify_inputs`` (default: calibration samples) plus random inputs, and checked for
    multiplier-freedom; a mismatch raises `VerificationError`. ``eval_data`` (labelled) adds
    float and integer top-1 accuracy to the report. ``prune_flops`` prepends AdaPruner (keep at
    most that share of the MACs; fine-tuned ``prune_epochs`` epochs on labelled ``train`` data).
    ``mode``, ``iters`` and ``calib_size`` are the options of ``method="rapq"`` (`pqc.passes.rapq`);
    its training report lands in ``report["rapq"]``.
    """
    from .frontend import load_onnx
    from .exporter import save_onnx
    from pqc.backends.c_emitter import emit_c

    tgt = get_target(target)
    # The build (and the IR dump) is staged beside its target and appears only once complete.
    with staged_folder(out_dir, force) as out, (
            staged_folder(dump_ir, force, "--dump-ir folder") if dump_ir is not None else contextlib.nullcontext()
    ) as dump_dir:
        stages: list[dict[str, Any]] = []

        def timed(name: str, t0: float) -> None:
            stages.append({"name": name, "seconds": round(time.monotonic() - t0, 3)})

        t0 = time.monotonic()
        graph = model if isinstance(model, Graph) else load_onnx(model)
        timed("import", t0)
        # Every data argument is checked against the model before any pass runs.
        calib_x = checked_inputs(graph, calib, "calibration data") if calib is not None else None
        verify_x = checked_inputs(graph, verify_inputs, "verification inputs") if verify_inputs is not None else None
        eval_set = checked_labelled(graph, eval_data, "evaluation data") if eval_data is not None else None
        if prune_flops is not None and pipeline is None:
            checked_labelled(graph, train, "training data", training=True)
        spec = pipeline or tgt.pipeline(
            {"method": method, "wbits": wbits, "abits": abits, "weight_format": weight_format,
             "first_last_bits": first_last_bits, "mode": mode, "iters": iters, "calib_size": calib_size}
        )
        if prune_flops is not None and pipeline is None:  # AdaPruner needs the BN nodes: it runs first
            spec = f"adaprune(flops={prune_flops},data={train},epochs={prune_epochs}),{spec}"
        pipe = Pipeline.parse(spec, verify=True, dump_dir=dump_dir)
        ctx = PassContext(calib=calib_x, seed=seed, device=device)
        console.info(f"compiling {graph.name} for {tgt.name}: {spec}")
        if pipe.names()[-1:] != ["lower"]:  # checked before any (possibly long) pass runs
            raise PqcError(f"pipeline {spec!r} must end in the integer program: its last pass must be 'lower'")
        pipe.start(graph, ctx)
        while pipe.position < len(pipe) - 1:
            pipe.step()
        annotated = pipe.graph  # the quantized float graph the program is lowered from
        program = pipe.step()
        stages += [{"name": t.name, "seconds": round(t.seconds, 3)} for t in ctx.timings]

        t0 = time.monotonic()
        emitted = emit_c(program, out, prefix=prefix)
        save_graph(program, out / PROGRAM)
        save_onnx(annotated, out / FLOAT_MODEL)
        timed("emit C", t0)

        t0 = time.monotonic()
        sample = calib_x[:ERROR_SAMPLES] if calib_x is not None else None
        errors = _measure_errors(annotated, program, sample) if sample is not None else {}
        timed("measure errors", t0)

        build = Build(out, program, annotated)
        report = _base_report(build, tgt.name, spec, seed, emitted.memory.to_dict(), errors,
                              0 if sample is None else len(sample))
        for stage in ("adaprune", "rapq"):  # passes that leave a report of their own
            if stage in ctx.state:
                report[stage] = ctx.state[stage]
        if verify:
            t0 = time.monotonic()
            vrep = verify_build(build, verify_x if verify_x is not None else sample, seed=seed)
            timed("verify", t0)
            report["verification"] = vrep.to_dict()
            report["totals"]["flash_bytes"] = _flash_bytes(vrep)
        if eval_set is not None:
            t0 = time.monotonic()
            report["accuracy"] = evaluate_build(build, eval_set)
            timed("evaluate", t0)
        build.report = report
        write_report(report, out)
        (out / TIMINGS).write_text(json.dumps({"stages": stages}, indent=1) + "\n")
    build.out_dir = Path(out_dir)
    return build


def _measure_errors(float_graph: Graph, program: Graph, x: np.ndarray) -> dict[str, dict[str, float]]:
    from .executor import FloatExecutor
    from pqc.backends.simulator import quantize_input, simulate

    names = [n for n in program.activations() if n in float_graph.values and not float_graph.values[n].is_const]
    ref = FloatExecutor(float_graph).run(x, capture=names)
    got = simulate(program, quantize_input(program, x), capture=True)
    return layer_errors(program, ref, got)


def _base_report(build: Build, target: str, spec: str, seed: int, memory: dict[str, Any],
                 errors: Mapping[str, Mapping[str, float]], error_samples: int) -> dict[str, Any]:
    from pqc.backends.intops import get_int_op

    program, fgraph = build.program, build.float_graph
    layers = []
    totals = {"adds": 0, "shifts": 0, "weight_bytes": 0, "digits": 0, "ideal_adds": 0}
    for node in program.nodes:
        cost = get_int_op(node.op).cost(node, program)
        digits, ideal_adds = weight_digits(node, program)
        out = program.values[node.outputs[0]]
        layer: dict[str, Any] = {
            "name": node.name, "op": node.op, "float_op": node.meta.get("float_op"),
            "shape": list(out.shape), "abits": out.meta.get("bits"), "exp": out.meta.get("exp"),
            "adds": int(cost.get("adds", 0)), "shifts": int(cost.get("shifts", 0)),
            "weight_bytes": int(cost.get("weight_bytes", 0)), "digits": digits, "ideal_adds": ideal_adds,
        }
        fnode = next((n for n in fgraph.nodes if n.name == node.name), None)
        wq = get_quant(fgraph, fnode.inputs[1]) if fnode is not None and len(fnode.inputs) > 1 and fnode.inputs[1] else None
        if isinstance(wq, WeightQuant):
            layer.update(wbits=wq.bits, weight_format=wq.fmt, weight_exps=[int(e) for e in wq.exps])
        if "range" in node.meta:
            layer["range"] = {k: list(v) for k, v in node.meta["range"].items()}
        layer.update(errors.get(node.outputs[0], {}))
        layers.append(layer)
        for k in totals:
            totals[k] += layer[k]
    totals["weight_bytes_dense"] = totals.pop("weight_bytes")
    totals["weight_bytes"] = int(memory["weight_bytes"])
    totals["arena_bytes"] = int(memory["arena_bytes"])
    totals["flash_bytes"] = None
    return {
        "model": program.name, "target": target, "pipeline": spec, "seed": seed,
        "input": {"name": program.inputs[0], "shape": list(program.values[program.inputs[0]].shape),
                  "exp": program.values[program.inputs[0]].meta["exp"]},
        "outputs": [{"name": o, "shape": list(program.values[o].shape), "dtype": program.values[o].dtype,
                     "exp": program.values[o].meta["exp"]} for o in program.outputs],
        "dropped_softmax": list(program.meta.get("dropped_softmax", ())),
        "memory": memory, "layers": layers, "totals": totals, "error_samples": error_samples,
    }


def _flash_bytes(vrep) -> int | None:
    """Flash of the model on Cortex-M0 (text, which holds code and const weights, plus data)."""
    for check in vrep.checks:
        if "text" in check.data:
            return int(check.data["text"]) + int(check.data["data"])
    return None


def load_build(build_dir: str | Path) -> Build:
    """A complete build folder written by `compile_model` (PqcError when it is not one, or lacks a file)."""
    from pqc.backends.c_emitter import read_manifest

    from .frontend import load_onnx

    out = require_files(build_dir, BUILD_FILES, "pqc build folder")
    prefix = read_manifest(out)["prefix"]
    require_files(out, (f"{prefix}.c", f"{prefix}.h"), "pqc build folder")
    return Build(out, load_graph(out / PROGRAM), load_onnx(out / FLOAT_MODEL))


def verify_build(build: Build, x_float: np.ndarray | None, *, seed: int = 0, random_samples: int = RANDOM_VERIFY_SAMPLES):
    """Bit-exact check of the build's C against the simulator on ``x_float`` (quantized like
    firmware would) plus random integer inputs; returns the harness's report, raises
    `VerificationError` on any failed check."""
    from pqc.backends.harness import verify
    from pqc.backends.intmath import format_range
    from pqc.backends.simulator import quantize_input

    prog = build.program
    meta = prog.values[prog.inputs[0]].meta
    shape = prog.values[prog.inputs[0]].shape[1:]
    parts = []
    if x_float is not None:
        parts.append(quantize_input(prog, check_samples(prog, x_float, "verification inputs")))
    lo, hi = format_range(meta["bits"], meta["signed"])
    rng = np.random.default_rng(seed)
    parts.append(rng.integers(lo, hi + 1, size=(random_samples, *shape)).astype(prog.values[prog.inputs[0]].dtype))
    try:
        return verify(prog, build.out_dir, np.concatenate(parts))
    except VerificationError as exc:
        if _DISK_FULL in str(exc):  # the C toolchain could not write: not a disagreement of the C
            raise PqcError(f"cannot build the C in {build.out_dir}: {_DISK_FULL.lower()}") from None
        raise


#: the C library's message for ENOSPC, which the compiler and linker print when the disk is full
_DISK_FULL = os.strerror(errno.ENOSPC)




def run_program(build: Build, x_float: np.ndarray) -> dict[str, np.ndarray]:
    """The integer program on float inputs: returns ``{output: dequantized}`` and
    ``{output + '_int': integers}``."""
    from pqc.backends.simulator import dequantize, quantize_input, simulate

    prog = build.program
    ints = simulate(prog, quantize_input(prog, check_samples(prog, x_float, "inputs")))
    out: dict[str, np.ndarray] = {}
    for name in prog.outputs:
        out[name] = dequantize(prog, name, ints[name]).astype(np.float32)
        out[f"{name}_int"] = ints[name]
    return out


def evaluate_build(build: Build, data: "str | Dataset") -> dict[str, Any]:
    """Top-1 accuracy of the float model and of the integer program on labelled ``data`` (a spec
    or a `Dataset`; every label must be one of the model's classes)."""
    from .executor import FloatExecutor

    ds = checked_labelled(build.program, data, "evaluation data")
    out_float = FloatExecutor(build.float_graph).run(ds.x)[build.float_graph.outputs[0]]
    out_int = run_program(build, ds.x)[build.program.outputs[0]]
    y = ds.y
    return {
        "data": data if isinstance(data, str) else ds.name, "n": int(len(y)),
        "float_top1": float(np.mean(np.argmax(out_float.reshape(len(y), -1), 1) == y)),
        "int_top1": float(np.mean(np.argmax(out_int.reshape(len(y), -1), 1) == y)),
    }
