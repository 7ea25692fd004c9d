"""Integer backend benchmark: the baseline PoT quantizer on the reference models.

For each model and bit width: top-1 of the compiled integer program on the Fashion-MNIST test
set next to the float model's, flash (Cortex-M0 text+data of the model code and weights),
activation arena, adds per inference, x86 instructions per inference of the generated C
(callgrind, deterministic) and their ratio to the ideal add count, and compile time.

    .venv/bin/python benchmarks/backend_benchmark.py                  # the README table
    .venv/bin/python benchmarks/backend_benchmark.py --models vgg --bits W8A8 --test-size 1000
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BITS = {"W8A8": (8, 8), "W4A8": (4, 8)}
MODELS = ("resnet8", "mobilenetv2", "vgg")


def measure(model: str, bits: str, test_size: int, method: str) -> dict:
    from pqc import console
    from pqc.backends.harness import build
    from pqc.backends.profile import instructions_per_inference
    from pqc.backends.simulator import quantize_input
    from pqc.data import load_dataset
    from pqc.driver import compile_model, evaluate_build
    from pqc.passes.quantize import QuantizeOptions

    wbits, abits = BITS[bits]
    with tempfile.TemporaryDirectory(prefix=f"pqc_bench_{model}_") as out:
        console.set_verbosity(console.QUIET)
        t0 = time.monotonic()
        b = compile_model(ROOT / "examples" / "models" / f"{model}.onnx", out,
                          quant=QuantizeOptions(method=method, wbits=wbits, abits=abits), calib="fashion-mnist:train:256", verify=True)
        compile_s = time.monotonic() - t0
        acc = evaluate_build(b, f"fashion-mnist:test:{test_size}")
        binary = build(out, "gcc")
        x = quantize_input(b.program, load_dataset("fashion-mnist:test:4").x)
        instr = instructions_per_inference(binary, x)
    t = b.report["totals"]
    return {
        "model": model, "bits": bits, "method": method, "n": acc["n"],
        "float_top1": acc["float_top1"], "int_top1": acc["int_top1"],
        "flash_bytes": t["flash_bytes"], "weight_bytes": t["weight_bytes"], "arena_bytes": t["arena_bytes"],
        "ideal_adds": t["ideal_adds"], "adds": t["adds"], "x86_instructions": instr,
        "instr_per_ideal_add": instr / t["ideal_adds"], "compile_s": compile_s,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| model | bits | float top-1 | int top-1 | flash (M0) | arena | ideal adds | x86 instr/inference "
            "| instr / ideal add | compile s |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['bits']} | {100 * r['float_top1']:.2f} | {100 * r['int_top1']:.2f} | "
            f"{r['flash_bytes']:,} | {r['arena_bytes']:,} | {r['ideal_adds']:,} | {r['x86_instructions']:,.0f} | "
            f"{r['instr_per_ideal_add']:.2f} | {r['compile_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--bits", nargs="+", default=list(BITS), choices=list(BITS))
    p.add_argument("--method", default="lp", choices=["lp", "naive"])
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    for model in args.models:
        for bits in args.bits:
            rows.append(measure(model, bits, args.test_size, args.method))
            print(f"{model} {bits}: int {rows[-1]['int_top1']:.4f} float {rows[-1]['float_top1']:.4f}", file=sys.stderr)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
