"""RAPQ benchmark: top-1 of each quantizer's compiled integer program on Fashion-MNIST.

Models x methods x bit widths (first and last layers always 8-bit). Methods:

* ``float``: the float model (one cell per model, under every bit width);
* ``ort-int8``: onnxruntime's own ``quantize_static`` (QDQ, per-channel int8 weights, int8
  activations, MinMax calibration on the same samples), run by onnxruntime: the external
  yardstick, W8A8 only;
* ``naive``, ``lp``: the baseline PoT quantizer (`pqc.passes.quantize`);
* ``rapq-quick``, ``rapq-full``: the rapq pass (`pqc.passes.rapq`);
* ``uniform``: the same reconstruction with float scales, evaluated as a float64 fake-quant
  model (it has no integer program: an accuracy reference only).

Each pqc cell runs the pipeline ``canonicalize, <quantizer>, lower`` and measures the integer
program with the simulator (bit-exact with the generated C); its time is that pipeline's wall
time (C emission and verification, identical for every method, excluded).

    .venv/bin/python benchmarks/rapq_benchmark.py                      # the full table (hours on 2 cores)
    .venv/bin/python benchmarks/rapq_benchmark.py --models resnet8 --methods naive,lp,rapq-quick \\
        --bits W4A4 --test-size 2000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet8", "mobilenetv2")
METHODS = ("float", "ort-int8", "naive", "lp", "rapq-quick", "rapq-full", "uniform")
BITS = {"W8A8": (8, 8), "W4A8": (4, 8), "W4A4": (4, 4), "W2A4": (2, 4)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--bits", default=",".join(BITS), help=f"comma-separated subset of {', '.join(BITS)}")
    p.add_argument("--test-size", type=int, default=10_000, help="test images (default all 10,000)")
    p.add_argument("--calib", default="fashion-mnist:train:256", help="calibration data (default: %(default)s)")
    p.add_argument("--iters", type=int, default=0, help="rapq/uniform iterations per unit (default 0: the mode's)")
    p.add_argument("--device", default="cpu", help="torch device for calibration and reconstruction")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for flag, known in (("models", MODELS), ("methods", METHODS), ("bits", tuple(BITS))):
        chosen = [s.strip() for s in getattr(args, flag).split(",") if s.strip()]
        unknown = [s for s in chosen if s not in known]
        if unknown or not chosen:
            p.error(f"--{flag}: unknown {unknown or 'empty'}; choose from {', '.join(known)}")
        setattr(args, flag, chosen)
    return args


def top1(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(logits.reshape(len(y), -1).argmax(1) == y))


def run_cell(model: str, method: str, bits: str, calib: np.ndarray, test,
             args: argparse.Namespace) -> tuple[float, float]:
    """(top-1, seconds) of one cell."""
    from pqc.backends.simulator import quantize_input, simulate
    from pqc.executor import FloatExecutor
    from pqc.frontend import load_onnx
    from pqc.passes.canonicalize import canonicalize
    from pqc.passes.rapq import fake_quant_logits, train
    from pqc.pipeline import PassContext, Pipeline

    path = ROOT / "examples" / "models" / f"{model}.onnx"
    wbits, abits = BITS[bits]
    t0 = time.monotonic()
    if method == "float":
        graph = load_onnx(path)
        return top1(FloatExecutor(graph).run(test.x)[graph.outputs[0]], test.y), 0.0
    if method == "ort-int8":
        return ort_int8(path, calib, test)
    if method == "uniform":
        model_ = train(canonicalize(load_onnx(path)), calib, method="uniform", wbits=wbits, abits=abits,
                       iters=args.iters, seed=args.seed, device=args.device)
        seconds = time.monotonic() - t0
        return top1(fake_quant_logits(model_, test.x), test.y), seconds
    if method.startswith("rapq"):
        step = f"rapq(mode={method.split('-')[1]},wbits={wbits},abits={abits},iters={args.iters})"
    else:
        step = f"quantize(method={method},wbits={wbits},abits={abits})"
    graph = load_onnx(path)
    program = Pipeline.parse(f"canonicalize,{step},lower").run(graph, PassContext(calib, args.seed, args.device))
    seconds = time.monotonic() - t0
    ints = simulate(program, quantize_input(program, test.x))[program.outputs[0]]
    return top1(ints, test.y), seconds


def ort_int8(path: Path, calib: np.ndarray, test) -> tuple[float, float]:
    """onnxruntime's static QDQ quantization (after its own pre-processing, which folds BN):
    per-channel int8 weights, int8 activations."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.batches = iter([{name: calib[i:i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self):
            return next(self.batches, None)

    name = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(path), str(prepared))
        quantize_static(str(prepared), str(out), Reader(name), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
        seconds = time.monotonic() - t0
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        logits = np.concatenate([session.run(None, {name: test.x[i:i + 500]})[0] for i in range(0, len(test.x), 500)])
    return top1(logits, test.y), seconds


def markdown(cells: dict[tuple[str, str, str], tuple[float, float] | None], args: argparse.Namespace) -> str:
    lines = ["| model | method | " + " | ".join(args.bits) + " |", "|---|---|" + "---:|" * len(args.bits)]
    for model in args.models:
        for method in args.methods:
            row = []
            for bits in args.bits:
                cell = cells.get((model, method, bits))
                row.append("-" if cell is None else f"{100 * cell[0]:.2f} ({cell[1]:.0f} s)")
            lines.append(f"| {model} | {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from pqc import console
    from pqc.data import load_dataset

    args = parse_args(argv)
    torch.set_num_threads(1)
    console.set_verbosity(console.QUIET)
    calib = load_dataset(args.calib).x
    test = load_dataset(f"fashion-mnist:test:{args.test_size}")
    cells: dict[tuple[str, str, str], tuple[float, float] | None] = {}
    for model in args.models:
        for method in args.methods:
            once = method in ("float", "ort-int8")
            for bits in args.bits:
                if method == "ort-int8" and bits != "W8A8":
                    continue
                key = (model, method, bits)
                if once and any(k[:2] == key[:2] for k in cells):
                    cells[key] = next(v for k, v in cells.items() if k[:2] == key[:2])
                    continue
                cells[key] = run_cell(model, method, bits, calib, test, args)
                print(f"{model} {method} {bits}: top-1 {100 * cells[key][0]:.2f}% in {cells[key][1]:.1f} s",
                      file=sys.stderr, flush=True)
    print(f"Top-1 (%) on {len(test)} Fashion-MNIST test images (compile seconds in parentheses): the integer "
          f"program, except float (the float model), ort-int8 (onnxruntime) and uniform (float64 fake-quant); "
          f"calibration {args.calib}, seed {args.seed}, first and last layers 8-bit.\n")
    print(markdown(cells, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
