"""The `pqc` command line.

Each subcommand is a thin function over the library (`pqc.frontend`, `pqc.executor`, ...): it
parses flags, calls one API, prints a result. Exit status: 0 success, 1 verification failure
(the generated program disagrees with its reference), 2 usage or input error (bad file,
unsupported op, wrong data), 3 internal error (a bug in pqc: please report it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from . import __version__, console
from .errors import PqcError

EXIT_OK, EXIT_VERIFY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="print only results and errors")
    g.add_argument("-v", "--verbose", action="store_true", help="print extra diagnostics (and tracebacks of internal errors)")


def _output_file(path: str, force: bool) -> Path:
    """Check an output file may be written: never overwrite without --force."""
    out = Path(path)
    if out.exists() and not force:
        raise PqcError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise PqcError(f"cannot write {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise PqcError(f"cannot write {out}: folder {out.parent} is not writable")
    return out


# ----------------------------------------------------------------------------- inspect
def cmd_inspect(args: argparse.Namespace) -> int:
    from .frontend import load_onnx
    from .summary import format_summary, summarize

    graph = load_onnx(args.model)
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
    from .executor import FloatExecutor
    from .frontend import load_onnx

    out = _output_file(args.output, args.force)
    graph = load_onnx(args.model)
    feeds = load_inputs(args.inputs, graph.inputs)
    results = FloatExecutor(graph).run(feeds, batch_size=args.batch_size)
    np.savez(out, **{name: results[name] for name in graph.outputs})
    for name in graph.outputs:
        console.info(f"{name}: {results[name].dtype}{list(results[name].shape)}")
    console.info(f"wrote {out}")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pqc",
        description="pqc compiles trained CNNs (ONNX) into pruned, power-of-two quantized, multiplier-free C.",
        epilog="Exit status: 0 ok, 1 verification failure, 2 usage or input error, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"pqc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("inspect", help="per-layer table of an ONNX model: shapes, parameters, MACs",
                       description="Import an ONNX model and print a per-layer table (name, op, output shape, "
                                   "parameters, MACs at batch 1), totals, and the model's inputs and outputs.")
    p.add_argument("model", help="ONNX model file")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (keys: model, inputs, outputs, layers, totals)")
    fmt.add_argument("--graph", action="store_true", help="print the imported IR as text instead of the table")
    _add_common(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="run a float ONNX model on arrays from an .npz file",
                       description="Run the float executor on the arrays in an .npz file (the array 'x', or arrays "
                                   "named after the model's inputs) and write the outputs under the model's output names.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--inputs", required=True, help=".npz file with the input arrays")
    p.add_argument("-o", "--output", required=True, help="output .npz file")
    p.add_argument("--batch-size", type=int, default=256, help="samples per executor call (default 256)")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    _add_common(p)
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console.set_verbosity(console.QUIET if args.quiet else console.VERBOSE if args.verbose else console.NORMAL)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
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
