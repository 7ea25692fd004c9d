"""MobileNetV3-style benchmark: float vs integer top-1 of examples/models/mobilenetv3.onnx.

Compiles the model at W8A8 (lp quantizer) and W4A8 (RAPQ, quick mode), each verified bit-exact
by the harness (gcc, clang, sanitizers, RV32I multiplier-free, Cortex-M0 build), measures float
and integer top-1 on the first ``--test`` Fashion-MNIST test images, and runs the firmware on
both boards (mps2-an385 Cortex-M0, rv32-virt RV32I; bit-exact with the simulator or the run
fails) for instructions per MAC, flash and RAM.

    .venv/bin/python benchmarks/mobilenetv3_benchmark.py [--test 10000] [--rapq-iters 0] [--work DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from kernel_benchmark import figures
from pqc.summary import markdown_table

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples/models/mobilenetv3.onnx"
HEADER = ["bits", "method", "float top-1", "integer top-1", "delta (points)", "verified", "Cortex-M0 flash B",
          "RAM (arena) B", "instr / MAC Cortex-M0", "instr / MAC RV32I", "compile s"]


def measure(bits: str, quant: Any, work: Path, eval_data: str) -> list[str]:
    """One row: compile with verification and evaluation, then the firmware on both boards."""
    from pqc.driver import compile_model
    from pqc.summary import summarize

    out = work / bits
    start = time.perf_counter()
    build = compile_model(MODEL, out, quant=quant, eval_data=eval_data, verify=True, force=True)
    seconds = time.perf_counter() - start
    acc = build.report["accuracy"]
    checks = build.report["verification"]["checks"]
    verified = ", ".join(c["name"].split()[0] for c in checks if c["status"] == "passed")
    fig = figures(build.program, out, summarize(build.float_graph)["totals"]["macs"])
    return [bits, quant.method, f"{acc['float_top1']:.2%}", f"{acc['int_top1']:.2%}",
            f"{100 * (acc['int_top1'] - acc['float_top1']):+.2f}", verified, f"{fig['flash']:,}",
            f"{build.report['totals']['arena_bytes']:,}", *(f"{v:.1f}" for v in fig["per_mac"]), f"{seconds:.0f}"]


def main() -> None:
    from pqc.passes.quantize import QuantizeOptions
    from pqc.passes.rapq import RapqOptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", type=int, default=10000, help="first N Fashion-MNIST test images (default all)")
    parser.add_argument("--rapq-iters", type=int, default=0, help="RAPQ iterations per unit (0: quick mode's)")
    parser.add_argument("--work", default="build/mobilenetv3-benchmark", help="folder of the builds")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    eval_data = f"fashion-mnist:test:{args.test}"
    configs = {"W8A8": QuantizeOptions(wbits=8, abits=8, method="lp"),
               "W4A8": RapqOptions(wbits=4, abits=8, mode="quick", iters=args.rapq_iters)}
    rows = [measure(bits, quant, work, eval_data) for bits, quant in configs.items()]
    print(f"examples/models/mobilenetv3.onnx, {eval_data}")
    print(markdown_table(rows, HEADER))


if __name__ == "__main__":
    main()
