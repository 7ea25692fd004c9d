"""`compile_model`: ONNX (or a Graph) -> verified C in a build folder, with its report.

Stages: import, the target's pass pipeline (verified after each pass; optional snapshots),
C emission, per-layer error measurement, verification of the C against the simulator, the
report. The build folder then holds everything later commands need:

    <prefix>.c, <prefix>.h, main.c, Makefile    the generated C and its test harness
    program.json, program.npz                   the integer program (the simulator's input)
    float.onnx                                  the float model the program was quantized from
    report.json, report.md                      what was built and measured
    memory.svg                                  the arena's buffer lifetimes (linked from report.md)
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
import math
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

import numpy as np

from . import console
from .build_folder import require_files, staged_folder
from .data_checks import (
    Feeds, Labelled, check_feeds, checked_inputs, checked_labelled, checked_labelled_feeds, classifier_output,
    sample_count, take_samples,
)
from .errors import PqcError, VerificationError
from .ir import Graph
from .pipeline import PassContext, Pipeline
from .report import LayerErrors, write_report
from .serialize import load_graph, save_graph
from .summary import summarize
from .targets import Target, get_target
from pqc.backends.kernel_select import DEFAULT_OPTIMIZE

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
#: without --verify-inputs, a compile verifies on calibration samples of at most this many MACs
#: together (at least `MIN_VERIFY_SAMPLES`, at most `ERROR_SAMPLES`): the reference models run all
#: 64; an ImageNet-size network, whose harness runs take seconds each on three builds, about 9
VERIFY_MACS = 2_000_000_000
MIN_VERIFY_SAMPLES = 8
T = TypeVar("T")


@dataclass
class Build:
    """A compiled model: its folder, integer program and float reference."""

    out_dir: Path
    program: Graph
    float_graph: Graph
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompileOptions:
    """Everything `compile_model` does besides the model and the folder; each default is here once.

    ``target``: the code generator and its default pipeline; ``calib``: calibration inputs (an
    array, a bundled data set spec or an .npz path; for a model with several inputs a dict by
    input name or an .npz holding an array per input name, and so for ``verify_inputs`` and
    ``eval_data``, whose .npz then also holds labels ``y``); ``quant``: the quantizer's options
    (`QuantizeOptions` for ``lp``/``naive``, `RapqOptions` for ``rapq``; None: `QuantizeOptions()`);
    ``pipeline``: a spec replacing the target's (e.g. ``"canonicalize,quantize(wbits=4),lower"``);
    ``prune_flops``: prepend AdaPruner keeping at most that share of the MACs, fine-tuned
    ``prune_epochs`` epochs (None: the pass's default) on labelled ``train`` data; ``prefix``: the
    C identifier prefix; ``seed``, ``device``: for every randomized or torch step; ``dump_ir``: a
    folder for a snapshot after every pass; ``verify``: build the C and compare it bit-exactly
    with the simulator on ``verify_inputs`` (default: calibration samples) plus random inputs;
    ``eval_data``: labelled data for float and integer top-1 in the report; ``force``: replace an
    existing build (only once the new one is complete); ``ram_budget``: bytes of RAM the build
    may need (arena + input/output buffers + stack allowance, `pqc.backends.memory_report.RamFit`):
    a program that needs more is refused before anything is written; ``optimize``: the per-layer kernel
    choice, ``size``, ``balanced`` or ``speed`` (`pqc.backends.kernel_select`, whose
    ``DEFAULT_OPTIMIZE`` is the default); ``flash_budget``: bytes the model's Cortex-M0 build (text +
    data of the model object) may take: kernels are chosen within it by the calibrated cost
    model's estimate, then the build is measured and the choice tightened until it fits
    (`lay_out`; without arm-none-eabi-gcc the estimate alone); refused when no choice fits;
    ``activations``: the arena layout, ``packed`` (activations of at most 4 bits two per byte,
    `pqc.backends.activation_layout`: the same integers in about half the RAM at A4, a few
    percent more instructions), ``bytes`` or ``auto``; ``schedule``: ``streamed`` (layer chains
    run row by row, `pqc.backends.streaming`), ``plain`` (layer by layer) or ``auto``. With
    ``auto``, `pqc.backends.schedule` takes the candidate of the fewest estimated instructions
    whose RAM fits ``ram_budget``, else (and without a budget) the one of the smallest arena.
    ``resume``: continue the interrupted RAPQ run whose checkpoint lies beside ``out_dir``
    (`resume_folder`; every RAPQ compile saves one after each unit and deletes it once the build
    is in place).
    """

    target: str = "shift-accel"
    calib: str | Feeds | None = "fashion-mnist:train:256"
    quant: Any = None
    pipeline: str | None = None
    prune_flops: float | None = None
    train: str = "fashion-mnist:train"
    prune_epochs: int | None = None
    prefix: str = "model"
    seed: int = 0
    device: str = "cpu"
    dump_ir: str | Path | None = None
    verify: bool = True
    verify_inputs: str | Feeds | None = None
    eval_data: str | None = None
    force: bool = False
    optimize: str = DEFAULT_OPTIMIZE
    ram_budget: int | None = None
    flash_budget: int | None = None
    activations: str = "auto"
    schedule: str = "auto"
    resume: bool = False


class StageClock:
    """Wall-clock seconds per compile stage, in the order they ran (for the report)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, name: str, seconds: float) -> None:
        self.records.append({"name": name, "seconds": round(seconds, 3)})

    def time(self, name: str, fn: Callable[[], T]) -> T:
        begin = time.monotonic()
        result = fn()
        self.add(name, time.monotonic() - begin)
        return result


def compile_model(model: str | Path | Graph, out_dir: str | Path, options: CompileOptions | None = None,
                  **overrides: Any) -> Build:
    """Compile ``model`` into ``out_dir``; return the `Build` (report included).

    ``options`` (default `CompileOptions()`) with ``overrides`` of its fields, e.g.
    ``compile_model(path, out, quant=QuantizeOptions(wbits=4), eval_data="fashion-mnist:test")``.
    A verification mismatch raises `VerificationError`; the passes that leave a report of their
    own (``adaprune``, ``rapq``) add it under their name.
    """
    from .frontend import load_onnx
    from pqc.backends.kernel_select import check_optimize
    from pqc.backends.memory_report import check_ram_budget
    from pqc.backends.schedule import check_schedule

    opts = replace(options or CompileOptions(), **overrides)
    check_schedule(opts.activations, opts.schedule)
    target = get_target(opts.target)
    check_optimize(opts.optimize)
    pipe = plan_pipeline(opts, target)  # checked before any (possibly long) work
    # The build (and the IR dump) is staged beside its target and appears only once complete.
    dump = staged_folder(opts.dump_ir, opts.force, "--dump-ir folder") if opts.dump_ir is not None else contextlib.nullcontext()
    with staged_folder(out_dir, opts.force) as out, dump as dump_dir:
        # under the output's lock: checkpoints there are an interrupted run's, not a running one's
        checkpoints = check_resume(pipe, resume_folder(Path(out_dir)), opts.resume, opts.force)
        clock = StageClock()
        graph = clock.time("import", lambda: model if isinstance(model, Graph) else load_onnx(model))
        # Every data argument is checked against the model before any pass runs.
        calib_x = checked_inputs(graph, opts.calib, "calibration data") if opts.calib is not None else None
        verify_x = (checked_inputs(graph, opts.verify_inputs, "verification inputs")
                    if opts.verify_inputs is not None else None)
        eval_set = (checked_labelled_feeds(graph, opts.eval_data, "evaluation data")
                    if opts.eval_data is not None else None)
        if opts.prune_flops is not None and opts.pipeline is None:
            checked_labelled(graph, opts.train, "training data", training=True)
        pipe.dump_dir = Path(dump_dir) if dump_dir is not None else None
        ctx = PassContext(calib=calib_x, seed=opts.seed, device=opts.device, checkpoint_dir=checkpoints,
                          resume=opts.resume)
        console.info(f"compiling {graph.name} for {target.name}: {pipe}")
        annotated, program = run_pipeline(pipe, graph, ctx)
        program = clock.time("lay out and select kernels", lambda: lay_out(program, opts))
        ram = (clock.time("check RAM", lambda: check_ram_budget(program, opts.ram_budget))
               if opts.ram_budget is not None else None)
        for t in ctx.timings:
            clock.add(t.name, t.seconds)
        memory = clock.time("emit C", lambda: write_program(out, program, annotated, opts.prefix))
        sample = take_samples(calib_x, ERROR_SAMPLES) if calib_x is not None else None
        errors = clock.time("measure errors",
                            lambda: measure_errors(annotated, program, sample) if sample is not None else {})

        build = Build(out, program, annotated)
        report = base_report(build, target.name, str(pipe), opts.seed, memory, errors,
                             0 if sample is None else sample_count(sample))
        report.update({stage: ctx.state[stage] for stage in ("adaprune", "rapq") if stage in ctx.state})
        if ram is not None:
            report["ram_budget"] = {"budget_bytes": ram.budget_bytes, "needed_bytes": ram.needed_bytes,
                                    "stack_bytes": ram.stack_bytes}
        if opts.verify:
            default_x = (None if sample is None
                         else take_samples(sample, verify_samples(summarize(annotated)["totals"]["macs"])))
            vrep = clock.time("verify", lambda: verify_build(build, verify_x if verify_x is not None else default_x,
                                                             seed=opts.seed))
            report["verification"] = vrep.to_dict()
            report["totals"]["flash_bytes"] = _flash_bytes(vrep)
        if eval_set is not None:
            report["accuracy"] = clock.time("evaluate", lambda: evaluate_build(build, eval_set))
        build.report = report
        write_report(report, out)
        (out / TIMINGS).write_text(json.dumps({"stages": clock.records}, indent=1) + "\n")
    build.out_dir = Path(out_dir)
    if checkpoints is not None:  # the build is in place: nothing left to resume
        shutil.rmtree(checkpoints, ignore_errors=True)
    return build


def lay_out(program: Graph, opts: CompileOptions) -> Graph:
    """The program with its arena layout (``opts.activations``), execution order
    (``opts.schedule``) and kernels (``opts.optimize``) chosen for ``opts.ram_budget``
    (`pqc.backends.schedule`), and with ``opts.flash_budget`` its Cortex-M0 build measured to fit."""
    from pqc.backends.kernel_select import measured_flash, selected_flash
    from pqc.backends.schedule import choose_schedule

    def choose(budget: int | None) -> Graph:
        return choose_schedule(program, opts.optimize, budget, opts.activations, opts.schedule, opts.ram_budget).program

    chosen = choose(opts.flash_budget)
    if opts.flash_budget is None:
        return chosen
    # The selection bounds the layers' estimated flash; the budget is on the built object (the
    # layers, the other ops, the entry point): while the build is over, ask the selection for
    # less than its last choice by the overshoot (the estimate misses a few % of the code).
    for _ in range(FLASH_FITS):
        flash = measured_flash(chosen)
        if flash is None or flash <= opts.flash_budget:
            return chosen
        chosen = choose(selected_flash(chosen) - (flash - opts.flash_budget) - FLASH_MARGIN)
    flash = measured_flash(chosen)
    if flash is not None and flash > opts.flash_budget:
        raise PqcError(f"--flash-budget {opts.flash_budget:,} B: the Cortex-M0 build still takes {flash:,} B after "
                       f"{FLASH_FITS} tries; give a larger budget")
    return chosen


#: rounds of `lay_out`'s measured-flash correction, and the bytes each adds to the overshoot
FLASH_FITS, FLASH_MARGIN = 3, 256


def resume_folder(out_dir: Path) -> Path:
    """Where a compile into ``out_dir`` keeps the checkpoints of its long passes: a hidden folder
    beside it, so that nothing in ``out_dir`` exists before the build is complete."""
    return out_dir.parent / f".{out_dir.name}.pqc-resume"


def check_resume(pipe: Pipeline, folder: Path, resume: bool, force: bool) -> Path | None:
    """The checkpoint folder for ``pipe`` (None when no pass of it saves checkpoints), after
    refusing ``resume`` without such a pass, and an interrupted run's checkpoints that would be
    overwritten without ``resume`` or ``force``."""
    if "rapq" not in pipe.names():
        if resume:
            raise PqcError("--resume continues an interrupted RAPQ run, and this compile runs no rapq pass")
        return None
    if not resume and not force and any(folder.glob("*.pt")):
        raise PqcError(f"an interrupted run left checkpoints in {folder}: --resume continues it, "
                       "--force starts over")
    return folder


def plan_pipeline(opts: CompileOptions, target: Target) -> Pipeline:
    """The compile's pass pipeline: the user's spec, or the target's for ``opts.quant`` (behind
    AdaPruner with ``prune_flops``: it needs the BN nodes, so it runs first); it must end in
    ``lower``, the pass that makes the integer program."""
    if opts.pipeline is not None:
        pipe = Pipeline.parse(opts.pipeline, verify=True)
    else:
        from pqc.passes.quantize import QuantizeOptions

        pipe = Pipeline(target.pipeline(opts.quant or QuantizeOptions()), verify=True)
        if opts.prune_flops is not None:
            prune = {"flops": opts.prune_flops, "data": opts.train}
            if opts.prune_epochs is not None:
                prune["epochs"] = opts.prune_epochs
            pipe.insert(0, "adaprune", **prune)
    if pipe.names()[-1:] != ["lower"]:
        raise PqcError(f"pipeline {str(pipe)!r} must end in the integer program: its last pass must be 'lower'")
    return pipe


def run_pipeline(pipe: Pipeline, graph: Graph, ctx: PassContext) -> tuple[Graph, Graph]:
    """Run every pass; return the quantized float graph the program was lowered from (the
    reference for error measurement and evaluation) and the integer program."""
    pipe.start(graph, ctx)
    while pipe.position < len(pipe) - 1:
        pipe.step()
    annotated = pipe.graph
    return annotated, pipe.step()


def write_program(out: Path, program: Graph, annotated: Graph, prefix: str):
    """Emit the C and its lifetime picture, save the integer program and its float reference;
    return the memory report."""
    from .exporter import save_onnx
    from pqc.backends.c_emitter import emit_c
    from pqc.backends.memory_report import MEMORY_SVG, memory_svg

    emitted = emit_c(program, out, prefix=prefix)
    (out / MEMORY_SVG).write_text(memory_svg(program, emitted.plan), encoding="utf-8")
    save_graph(program, out / PROGRAM)
    save_onnx(annotated, out / FLOAT_MODEL)
    return emitted.memory


def measure_errors(float_graph: Graph, program: Graph, x: Feeds) -> dict[str, dict[str, float]]:
    """Per-activation SQNR and clip ratio (every output's included) of the program against the
    float graph on ``x`` (a dict by input name for several inputs), `error_batch` samples at a
    time (every activation of both is captured: all samples at once took 5.3 GB on a 224x224
    MobileNetV3, 8 at once 5.1 GB on DenseNet-121)."""
    from .executor import FloatExecutor
    from pqc.backends.simulator import quantize_input, simulate

    names = [n for n in program.activations() if n in float_graph.values and not float_graph.values[n].is_const]
    executor, errors = FloatExecutor(float_graph), LayerErrors(program)
    step = error_batch(float_graph, program, names)
    for start in range(0, sample_count(x), step):
        batch = {k: a[start:start + step] for k, a in x.items()} if isinstance(x, Mapping) else x[start:start + step]
        errors.add(executor.run(batch, capture=names), simulate(program, quantize_input(program, batch), capture=True))
    return errors.result()


#: samples `measure_errors` runs at once, at most
ERROR_BATCH = 8
#: the most bytes one `measure_errors` batch may capture: the float activations (float32) and every
#: activation of the program (the simulator's int64)
ERROR_CAPTURE_BYTES = 512 << 20


def error_batch(float_graph: Graph, program: Graph, names: list[str]) -> int:
    """How many samples `measure_errors` runs at once: `ERROR_BATCH`, fewer when their captured
    activations would pass `ERROR_CAPTURE_BYTES`; a multiple of a fixed-batch graph's batch."""
    unit = 1 if float_graph.dynamic_batch else float_graph.values[float_graph.inputs[0]].shape[0]
    per_sample = (4 * sum(math.prod(float_graph.values[n].shape[1:]) for n in names)
                  + 8 * sum(math.prod(program.values[n].shape[1:]) for n in program.activations()))
    return unit * max(1, min(ERROR_BATCH // unit, ERROR_CAPTURE_BYTES // max(per_sample * unit, 1)))


def base_report(build: Build, target: str, pipeline: str, seed: int, memory: Any,
                errors: Mapping[str, Mapping[str, float]], error_samples: int) -> dict[str, Any]:
    """The report before verification: every layer's cost (asked of its integer op), its
    tables as emitted (from the emitter's memory report), its number formats (from the program)
    and measured error, and the totals."""
    from pqc.backends.activation_layout import packed_bits
    from pqc.backends.memory_report import peak_step
    from pqc.backends.streaming import streams
    from pqc.intops import get_int_op

    program = build.program
    emitted = {layer.node: layer for layer in memory.layers}
    layers = []
    totals = dict.fromkeys(("adds", "shifts", "digits", "ideal_adds", "dense_weight_bytes"), 0)
    for node in program.nodes:
        out = program.values[node.outputs[0]]
        layer: dict[str, Any] = {
            "name": node.name, "op": node.op, "float_op": node.meta.get("float_op"),
            "shape": list(out.shape), "abits": out.meta.get("bits"), "exp": out.meta.get("exp"),
            "packed_bits": packed_bits(out),
            **get_int_op(node.op).cost(node, program), "weight_bytes": emitted[node.name].weight_bytes,
            "kernel": emitted[node.name].kernel,
        }
        if "cost" in node.meta:  # the kernel selection's estimate (calibrated cost model)
            cost = node.meta["cost"]
            layer.update(est_flash_bytes=cost["flash_bytes"], est_instr_m0=cost["instructions"]["cortex-m0"],
                         est_instr_rv32i=cost["instructions"]["rv32i"])
        weight = next((program.values[i] for i in node.inputs if i and "format" in program.values[i].meta), None)
        if weight is not None:
            layer.update(wbits=weight.meta["bits"], weight_format=weight.meta["format"],
                         weight_exps=list(weight.meta["exps"]), dead_channels=list(weight.meta.get("dead", ())))
        if "range" in node.meta:
            layer["range"] = {k: list(v) for k, v in node.meta["range"].items()}
        layer.update(errors.get(node.outputs[0], {}))
        layers.append(layer)
        for k in totals:
            totals[k] += layer[k]
    totals.update(weight_bytes=int(memory.weight_bytes), arena_bytes=int(memory.arena_bytes),
                  arena_lower_bound_bytes=int(memory.arena_lower_bound_bytes), flash_bytes=None,
                  packed_activations=sum(1 for name in program.activations() if packed_bits(program.values[name])),
                  streams=[list(chain) for chain in streams(program)])
    peak = peak_step(memory.steps)
    totals.update(ram_peak_step=None if peak is None else peak.step, ram_peak_layer=None if peak is None else peak.node)
    inputs = [{"name": i, "shape": list(program.values[i].shape), "dtype": program.values[i].dtype,
               "exp": program.values[i].meta["exp"]} for i in program.inputs]
    return {
        "model": program.name, "target": target, "pipeline": pipeline, "seed": seed,
        "input": {k: inputs[0][k] for k in ("name", "shape", "exp")}, "inputs": inputs,
        "outputs": [{"name": o, "shape": list(program.values[o].shape), "dtype": program.values[o].dtype,
                     "exp": program.values[o].meta["exp"], **errors.get(o, {})} for o in program.outputs],
        "dropped_softmax": list(program.meta.get("dropped_softmax", ())),
        "memory": memory.to_dict(), "layers": layers, "totals": totals, "error_samples": error_samples,
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


def verify_samples(macs: int | None) -> int:
    """How many calibration samples a compile verifies on by default (see `VERIFY_MACS`)."""
    if not macs:
        return ERROR_SAMPLES
    return max(MIN_VERIFY_SAMPLES, min(ERROR_SAMPLES, VERIFY_MACS // macs))


def verify_build(build: Build, x_float: Feeds | None, *, seed: int = 0, random_samples: int = RANDOM_VERIFY_SAMPLES):
    """Bit-exact check of the build's C against the simulator on ``x_float`` (quantized like
    firmware would; a dict by input name for several inputs) plus random integer inputs;
    returns the harness's report, raises `VerificationError` on any failed check."""
    from pqc.backends.harness import verify
    from pqc.backends.simulator import by_input, quantize_input
    from pqc.intmath import value_range

    prog = build.program
    parts: dict[str, list[np.ndarray]] = {name: [] for name in prog.inputs}
    if x_float is not None:
        for name, q in by_input(prog, quantize_input(prog, check_feeds(prog, x_float, "verification inputs"))).items():
            parts[name].append(q)
    rng = np.random.default_rng(seed)
    for name in prog.inputs:
        x_in = prog.values[name]
        lo, hi = value_range(x_in)
        parts[name].append(rng.integers(lo, hi + 1, size=(random_samples, *x_in.shape[1:])).astype(x_in.dtype))
    try:
        return verify(prog, build.out_dir, {name: np.concatenate(p) for name, p in parts.items()})
    except VerificationError as exc:
        if _DISK_FULL in str(exc):  # the C toolchain could not write: not a disagreement of the C
            raise PqcError(f"cannot build the C in {build.out_dir}: {_DISK_FULL.lower()}") from None
        raise


#: the C library's message for ENOSPC, which the compiler and linker print when the disk is full
_DISK_FULL = os.strerror(errno.ENOSPC)


def run_program(build: Build, x_float: Feeds, what: str = "inputs") -> dict[str, np.ndarray]:
    """The integer program on float inputs (a dict by input name for several inputs): returns
    ``{output: dequantized}`` and ``{output + '_int': integers}`` for every output."""
    from pqc.backends.simulator import dequantize, quantize_input, simulate

    prog = build.program
    ints = simulate(prog, quantize_input(prog, check_feeds(prog, x_float, what)))
    out: dict[str, np.ndarray] = {}
    for name in prog.outputs:
        out[name] = dequantize(prog, name, ints[name]).astype(np.float32)
        out[f"{name}_int"] = ints[name]
    return out


def evaluate_build(build: Build, data: "str | Dataset | Labelled", output: str | None = None) -> dict[str, Any]:
    """Top-1 accuracy of the float model and of the integer program on labelled ``data`` (a spec,
    a `Dataset`, or `Labelled` inputs of a model with several), read off the output ``output``
    (default: the first; every label must be one of its classes). With several outputs the
    result names the output (``output``)."""
    from .executor import FloatExecutor

    name = classifier_output(build.program, output)
    ds = checked_labelled_feeds(build.program, data, "evaluation data", output=name)
    float_name = build.float_graph.outputs[build.program.outputs.index(name)]  # a dropped Softmax renames it
    out_float = FloatExecutor(build.float_graph).run(ds.x)[float_name]
    out_int = run_program(build, ds.x)[name]
    y = ds.y
    result = {
        "data": ds.name, "n": int(len(y)),
        "float_top1": float(np.mean(np.argmax(out_float.reshape(len(y), -1), 1) == y)),
        "int_top1": float(np.mean(np.argmax(out_int.reshape(len(y), -1), 1) == y)),
    }
    return result if len(build.program.outputs) == 1 else {**result, "output": name}
