"""The `pqc` command line.

Each subcommand is a thin function over the library (`pqc.frontend`, `pqc.executor`, ...): it
parses flags, calls one API, prints a result. Exit status: 0 success, 1 verification failure
(the generated program disagrees with its reference), 2 usage or input error (bad file,
unsupported op, wrong data), 3 internal error (a bug in pqc: please report it).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

from . import __version__, arg_types, console
from .build_folder import check_file_target, staged_file
from .driver import RANDOM_VERIFY_SAMPLES
from .errors import PqcError
from .quant import BitWidths

if TYPE_CHECKING:  # pragma: no cover
    from pqc.passes.quantize import QuantizeOptions
    from pqc.passes.rapq import RapqOptions

    from .ir import Graph

EXIT_OK, EXIT_VERIFY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: `pqc compile` flags only RAPQ takes (as `RapqOptions` fields)
RAPQ_FLAGS = ("mode", "iters", "calib_size")
#: modules defining further subcommands (``add_parser(subparsers, add_common)``)
SUBCOMMAND_MODULES: list[str] = ["pqc.cli_prune", "pqc.cli_firmware"]


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="print only results and errors")
    g.add_argument("-v", "--verbose", action="store_true", help="print extra diagnostics (and tracebacks of internal errors)")


def _seconds(text: str) -> float:
    """A positive number of seconds (the verification time limits)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _byte_size(text: str) -> int:
    """A RAM size such as ``16K``, ``16KiB`` or ``16384`` (`pqc.backends.firmware.parse_bytes`)."""
    from pqc.backends.firmware import parse_bytes

    try:
        return parse_bytes(text)
    except PqcError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _verify_time_limit(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """`verify --timeout` and `compile --verify-timeout` (both ``args.verify_timeout``) bound the
    verification the command runs."""
    if getattr(args, "verify_timeout", None) is None:
        return contextlib.nullcontext()
    from pqc.backends.harness import time_limit

    return time_limit(args.verify_timeout)


def _add_input_shape(p: argparse.ArgumentParser) -> None:
    """The ``--input-shape NAME:DIMS`` flag of every command that imports ONNX (see `_load_onnx`)."""
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:DIMS",
                   help="fix the dynamic dims of graph input NAME, e.g. input:1x3x48x192 (repeatable)")


def _load_onnx(args: argparse.Namespace) -> "Graph":
    """Import ``args.model`` with the ``--input-shape`` flags applied."""
    from .frontend import load_onnx, parse_input_shape

    return load_onnx(args.model, input_shapes=dict(parse_input_shape(s) for s in args.input_shape))


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as the one line every pqc error is (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------- inspect
def cmd_inspect(args: argparse.Namespace) -> int:
    from .summary import format_summary, summarize

    graph = _load_onnx(args)
    summary = summarize(graph)
    if args.graph:
        print(graph)
    elif args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return EXIT_OK


# ----------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import load_inputs

    from .data_checks import check_feeds

    out = check_file_target(args.output, args.force)  # before any work; the exact name is written
    if Path(args.model).is_dir():  # a build folder: the integer program
        from .driver import load_build, run_program

        build = load_build(args.model)
        graph = build.program
        results = run_program(build, load_inputs(args.inputs, graph.inputs), f"--inputs {args.inputs}")
    else:
        from .executor import FloatExecutor

        graph = _load_onnx(args)
        feeds = load_inputs(args.inputs, graph.inputs)
        check_feeds(graph, feeds, f"--inputs {args.inputs}")
        results = FloatExecutor(graph).run(feeds, batch_size=args.batch_size)
        results = {name: results[name] for name in graph.outputs}
    with staged_file(out, args.force) as stage, open(stage, "wb") as f:
        np.savez(f, **results)  # a file object: numpy appends no .npz to the name
    for name, arr in results.items():
        console.info(f"{name}: {arr.dtype}{list(arr.shape)}")
    console.info(f"wrote {out}")
    return EXIT_OK


# ----------------------------------------------------------------------------- compile
def cmd_compile(args: argparse.Namespace) -> int:
    from .driver import CompileOptions, compile_model

    model = _load_onnx(args) if args.input_shape else args.model
    options = CompileOptions(
        target=args.target, calib=args.calib, quant=_quant_options(args), pipeline=args.pipeline,
        prune_flops=args.prune_flops, train=args.train, prune_epochs=args.prune_epochs, prefix=args.prefix,
        seed=args.seed, device=args.device, dump_ir=args.dump_ir, verify=not args.no_verify,
        verify_inputs=args.verify_inputs, eval_data=args.eval, force=args.force, optimize=args.optimize or CompileOptions.optimize,
        ram_budget=args.ram_budget, flash_budget=args.flash_budget,
        activations=args.activations or CompileOptions.activations,
        schedule=args.schedule or CompileOptions.schedule, resume=args.resume,
    )
    build = compile_model(model, args.output, options)
    _print_build_summary(build.report, build.out_dir)
    return EXIT_OK


def _quant_options(args: argparse.Namespace) -> "QuantizeOptions | RapqOptions":
    """The quantizer's options object from the flags the user gave (the class supplies the rest)."""
    from pqc.passes.quantize import QuantizeOptions
    from pqc.passes.rapq import RapqOptions

    rapq = args.method in ("rapq", "uniform")
    given = {k: getattr(args, k) for k in ("wbits", "abits", "weight_format", "first_last_bits", "first_output_bits")
             if getattr(args, k) is not None}
    if args.layer_bits:
        given["layer_bits"] = _layer_bits(args.layer_bits)
    rapq_only = {k: getattr(args, k) for k in RAPQ_FLAGS if getattr(args, k) is not None}
    if rapq_only and not rapq:
        flags = ", ".join("--" + k.replace("_", "-") for k in rapq_only)
        raise PqcError(f"{flags}: only --method rapq takes {'this option' if len(rapq_only) == 1 else 'these options'}")
    if rapq:
        return RapqOptions(method=args.method, **given, **rapq_only)
    return QuantizeOptions(**({"method": args.method} if args.method else {}), **given)


def _layer_bits(items: list[str]) -> dict[str, int]:
    """``--layer-bits LAYER=BITS`` flags as a dict (the quantizer checks names and ranges)."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, bits = item.rpartition("=")
        if not sep or not name or not bits.strip().isdigit():
            raise PqcError(f"--layer-bits {item!r}: expected LAYER=BITS, e.g. conv1=8")
        out[name] = int(bits)
    return out


def _print_build_summary(report: dict, out_dir: Path) -> None:
    t = report["totals"]
    lines = [f"compiled {report['model']} -> {out_dir}",
             f"  weights {t['weight_bytes']:,} B, arena {t['arena_bytes']:,} B"
             + (f", Cortex-M0 flash {t['flash_bytes']:,} B" if t.get("flash_bytes") else "")
             + f"; {t['adds']:,} adds and {t['shifts']:,} shifts per inference"]
    for c in report.get("verification", {}).get("checks", []):
        lines.append(f"  {c['status']:8} {c['name']}: {c['details']}")
    acc = report.get("accuracy")
    if acc:
        lines.append(f"  top-1 on {acc['n']} samples: float {acc['float_top1']:.4f}, integer {acc['int_top1']:.4f}")
    console.info("\n".join(lines))


# ----------------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    from .data_checks import checked_inputs
    from .driver import load_build, verify_build

    build = load_build(args.build)
    x = checked_inputs(build.program, args.inputs, "--inputs") if args.inputs else None
    report = verify_build(build, x, seed=args.seed, random_samples=args.random)
    for c in report.checks:
        print(f"{c.status:8} {c.name}: {c.details}")
    skipped = [c.name for c in report.checks if c.status == "skipped"]
    if skipped:
        console.info(f"note: {len(skipped)} check(s) skipped because a tool is missing: {', '.join(skipped)}")
    return EXIT_OK


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from .driver import evaluate_build, load_build

    result = evaluate_build(load_build(args.build), args.data, args.output)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        of = f" (output {result['output']})" if "output" in result else ""
        print(f"top-1 on {result['n']} samples of {result['data']}{of}: float {result['float_top1']:.4f}, "
              f"integer program {result['int_top1']:.4f}")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from pqc.backends.memory_report import STACK_ALLOWANCE
    from pqc.backends.schedule import LAYOUTS, SCHEDULES

    parser = _Parser(
        prog="pqc",
        description="pqc compiles trained CNNs (ONNX) into pruned, power-of-two quantized, multiplier-free C, verified bit-exact.",
        epilog="Exit status: 0 ok, 1 verification failure, 2 usage or input error, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"pqc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("inspect", help="per-layer table of an ONNX model: shapes, parameters, MACs",
                       description="Import an ONNX model and print a per-layer table (name, op, output shape, "
                                   "parameters, MACs at batch 1), totals, and the model's inputs and outputs.")
    p.add_argument("model", help="ONNX model file")
    _add_input_shape(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (keys: model, inputs, outputs, layers, totals)")
    fmt.add_argument("--graph", action="store_true", help="print the imported IR as text instead of the table")
    _add_common(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="run a float ONNX model, or a build's integer program, on arrays from an .npz",
                       description="Run the float executor (for an ONNX file) or the integer program (for a build "
                                   "folder) on the arrays in an .npz file (the array 'x', or arrays named after the "
                                   "model's inputs, which a model with several needs) and write every output under "
                                   "its name; a build's outputs are dequantized, with the raw integers as '<name>_int'.")
    p.add_argument("model", help="ONNX model file, or a build folder written by pqc compile")
    _add_input_shape(p)
    p.add_argument("--inputs", required=True, help=".npz file with the input arrays")
    p.add_argument("-o", "--output", required=True, help="output .npz file")
    p.add_argument("--batch-size", type=arg_types.positive, default=256, help="samples per executor call (default 256)")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compile", help="compile an ONNX model to verified multiplier-free C",
                       description="Quantize a float ONNX model to power-of-two scales, lower it to an integer "
                                   "program, emit C for the target into the output folder, verify the C bit-exactly "
                                   "against the simulator (when a C compiler exists) and write report.json/report.md.")
    p.add_argument("model", help="float ONNX model file")
    _add_input_shape(p)
    p.add_argument("-o", "--output", required=True, help="build folder (created; must be empty unless --force)")
    p.add_argument("--target", default="shift-accel", help="code generation target (default shift-accel: add/shift only)")
    p.add_argument("--calib", default="fashion-mnist:train:256",
                   help="calibration inputs: an .npz with array 'x' (several inputs: an array per input "
                        "name), or a bundled data set such as fashion-mnist:train:256 (default)")
    p.add_argument("--method", choices=["lp", "naive", "rapq", "uniform"],
                   help="quantizer: lp (Lp(2.4) clipping search, default), naive (min/max range), rapq (block "
                        "reconstruction with learned PoT exponents) or uniform (float-scale reconstruction: an "
                        "accuracy reference that no shift-only target accepts)")
    p.add_argument("--mode", choices=["quick", "full"],
                   help="rapq: quick (default) or full (4x the iterations, BN-derived loss exponent range 1..1.9)")
    p.add_argument("--iters", type=arg_types.non_negative, help="rapq: iterations per unit (default 0: the mode's)")
    p.add_argument("--calib-size", type=arg_types.positive, help="rapq: calibration samples used (default 256)")
    p.add_argument("--wbits", type=int, help=f"weight bits, 2..8 (default {BitWidths.wbits})")
    p.add_argument("--abits", type=int, help=f"activation bits, 4..8 (default {BitWidths.abits})")
    p.add_argument("--weight-format", choices=["int", "pot"],
                   help=f"int: integers times a power-of-two scale; pot: every weight 0 or +-2^k (default {BitWidths.weight_format})")
    p.add_argument("--first-last-bits", type=int,
                   help=f"bits of the first and last layers (default {BitWidths.first_last_bits})")
    p.add_argument("--first-output-bits", type=int,
                   help="bits of the first layer's output activation alone, 4..8 (default: --first-last-bits); "
                        "4 with --abits 4 lets that activation, often the largest, pack two per byte")
    p.add_argument("--layer-bits", action="append", default=[], metavar="LAYER=BITS",
                   help="weight bits of one layer, 2..8, overriding --wbits/--first-last-bits (repeatable)")
    p.add_argument("--pipeline", help="custom pass pipeline spec, e.g. 'canonicalize,quantize(wbits=4),lower'")
    p.add_argument("--optimize", choices=["size", "balanced", "speed"],
                   help="per-layer C kernels chosen by the calibrated cost model: size (smallest weight tables, "
                        "then fewest instructions), speed "
                        "(fewest Cortex-M0 instructions within --flash-budget, else within the digit tables' "
                        "flash), balanced (fewest instructions within the int8 weights' flash, or within "
                        "--flash-budget; the default)")
    p.add_argument("--flash-budget", type=_byte_size, metavar="SIZE",
                   help="flash the model's Cortex-M0 build (code and tables) may take, e.g. 256K: chosen by the "
                        "calibrated cost model's estimate, then measured on the build and tightened until it fits; "
                        "refused with the least that fits when too small")
    p.add_argument("--ram-budget", type=_byte_size, metavar="SIZE",
                   help=f"RAM the build may need, e.g. 16K: arena + input/output buffers + a {STACK_ALLOWANCE}-byte "
                        "stack allowance; a model that needs more is refused (exit 2) naming the layer where the most "
                        "bytes are live")
    p.add_argument("--activations", choices=LAYOUTS,
                   help="arena layout: packed stores activations of at most 4 (2) bits that live in the arena two "
                        "(four) per byte, where every kernel touching them reads that layout; bytes one per byte; "
                        "auto (the default): see --schedule")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="streamed runs chains of layers row by row, so their intermediate outputs take a few rows "
                        "instead of whole tensors; plain runs layer by layer; auto (the default) takes, of the "
                        "layouts and schedules allowed, the fewest estimated instructions whose RAM fits "
                        "--ram-budget, else (and without a budget) the smallest arena")
    p.add_argument("--prefix", type=arg_types.c_prefix, default="model", help="C identifier prefix: <prefix>_run, <prefix>.h (default model)")
    p.add_argument("--seed", type=arg_types.seed, default=0, help="seed for every randomized step (default 0)")
    p.add_argument("--device", type=arg_types.torch_device, default="cpu", help="torch device for calibration and reconstruction (default cpu)")
    p.add_argument("--dump-ir", metavar="DIR", help="write a snapshot of the IR after every pass into DIR")
    p.add_argument("--no-verify", action="store_true", help="skip building and verifying the C")
    p.add_argument("--verify-inputs", help="inputs for verification (.npz or data set); default: calibration samples")
    p.add_argument("--verify-timeout", type=_seconds, metavar="SECONDS",
                   help="stop the verification (exit 2) when it takes longer than this")
    p.add_argument("--eval", metavar="DATA", help="labelled data to report float and integer top-1 on, e.g. fashion-mnist:test")
    p.add_argument("--prune-flops", type=float, metavar="F",
                   help="prune channels with AdaPruner first, keeping at most this share of the MACs (e.g. 0.5)")
    p.add_argument("--train", default="fashion-mnist:train",
                   help="labelled training data for pruning's criterion choice and fine-tuning (default fashion-mnist:train)")
    p.add_argument("--prune-epochs", type=arg_types.non_negative, help="fine-tuning epochs after pruning (default: adaprune's, 1)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output folder (and --dump-ir folder) once the new build is complete; "
                        "with --method rapq, also start over an interrupted run instead of refusing")
    p.add_argument("--resume", action="store_true",
                   help="--method rapq: continue the interrupted run whose checkpoint (saved after every unit) "
                        "lies beside OUTPUT as .NAME.pqc-resume")
    _add_common(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("verify", help="check a build's C bit-exactly against the simulator and for multiplies",
                       description="Build the C of a build folder with gcc and clang (-Werror), compare it bit-exactly "
                                   "with the simulator on the given and on random inputs, run it under sanitizers, and "
                                   "prove it multiplier-free (RV32I) and buildable for Cortex-M0. Exit 1 on a mismatch "
                                   "(naming the first differing layer); checks whose tool is missing are reported as skipped.")
    p.add_argument("build", help="build folder written by pqc compile")
    p.add_argument("--inputs", help="float inputs (.npz with 'x' or, for several inputs, an array per input name; "
                                    "or a data set such as fashion-mnist:test:32)")
    p.add_argument("--random", type=arg_types.non_negative, default=RANDOM_VERIFY_SAMPLES,
                   help=f"random integer inputs added (default {RANDOM_VERIFY_SAMPLES})")
    p.add_argument("--seed", type=arg_types.seed, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS", dest="verify_timeout",
                   help="stop (exit 2) when the verification takes longer than this")
    _add_common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("evaluate", help="top-1 accuracy of a build's integer program and of its float model",
                       description="Run the integer program (simulator) and the float model on labelled data and "
                                   "report both top-1 accuracies.")
    p.add_argument("build", help="build folder written by pqc compile")
    p.add_argument("--data", required=True, help="labelled data: .npz with 'x' (or, for several inputs, an array "
                                                 "per input name) and 'y', or e.g. fashion-mnist:test")
    p.add_argument("--output", metavar="NAME", help="the model output holding the class scores (default: the first)")
    p.add_argument("--json", action="store_true", help="print JSON with float_top1, int_top1, n (and output, "
                                                       "for a model with several)")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    # Subcommands that live in their own modules: each module has add_parser(sub, add_common).
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(sub, _add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return int(exc.code or 0)
    console.set_verbosity(console.QUIET if args.quiet else console.VERBOSE if args.verbose else console.NORMAL)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with _verify_time_limit(args):
            return func(args)
    except PqcError as exc:
        print(f"pqc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pqc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in pqc, not the user's fault
        if args.verbose:
            traceback.print_exc()
        print(f"pqc: internal error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
