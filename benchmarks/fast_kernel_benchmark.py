"""qconv_fast benchmark: a reference model with every QConv on one kernel, side by side.

For each model and bit width (lp quantizer, ``--optimize speed``: digit tables everywhere), the
program is emitted once per QConv kernel (``node.meta["kernel"]`` set on every QConv, the way
a selection pass records its choice) and measured like `kernel_benchmark.py`: constant-table
bytes, arena bytes, Cortex-M0 flash (the harness's ``-Os`` build) and instructions per MAC of
one inference on Cortex-M0 (mps2-an385) and RV32I (rv32-virt) under QEMU ``-icount``, the
firmware's outputs bit-exact with the simulator (or the run fails). ``--columns`` measures
qconv_fast at other column counts (output columns per table walk).

    .venv/bin/python benchmarks/fast_kernel_benchmark.py [--models resnet8] [--bits W4A4 W8A8]
        [--kernels qconv_tables qconv_fast] [--columns 4] [--work DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kernel_benchmark import BITS, MODELS, ROOT, figures
from pqc.summary import markdown_table

HEADER = ["model", "bits", "QConv kernel", "table bytes", "arena bytes", "Cortex-M0 flash B",
          "instr / MAC Cortex-M0", "instr / MAC RV32I"]


def measure(model: str, bits: str, kernels: list[str], columns: list[int], work: Path) -> list[list[str]]:
    """One row per (kernel, column count) of ``model`` at ``bits``."""
    from pqc.backends.c_emitter import emit_c
    from pqc.backends.kernels import KERNELS
    from pqc.driver import compile_model
    from pqc.passes.quantize import QuantizeOptions
    from pqc.summary import summarize

    wbits, abits = BITS[bits]
    build = compile_model(ROOT / f"examples/models/{model}.onnx", work / f"{model}-{bits}",
                          quant=QuantizeOptions(wbits=wbits, abits=abits), optimize="speed", verify=False, force=True)
    macs = summarize(build.float_graph)["totals"]["macs"]
    fast = KERNELS["qconv_fast"]
    rows = []
    for kernel in kernels:
        for n in columns if kernel == "qconv_fast" else [None]:
            if n is not None:
                fast.columns = n
            program = build.program.copy()
            for node in program.nodes:
                if node.op == "QConv":
                    node.meta["kernel"] = kernel
            label = kernel if n is None else f"{kernel} ({n} columns)"
            out = work / f"{model}-{bits}-{kernel}{n or ''}"
            memory = emit_c(program, out).memory
            fig = figures(program, out, macs)
            rows.append([model, bits, label, f"{memory.weight_bytes:,}", f"{memory.arena_bytes:,}",
                         f"{fig['flash']:,}", *(f"{v:.2f}" for v in fig["per_mac"])])
    fast.columns = type(fast).columns
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["resnet8"], help="reference models")
    parser.add_argument("--bits", nargs="+", choices=list(BITS), default=list(BITS), help="bit widths")
    parser.add_argument("--kernels", nargs="+", default=["qconv_tables", "qconv_fast"], help="QConv kernels")
    parser.add_argument("--columns", nargs="+", type=int, default=[4], help="qconv_fast output columns per walk")
    parser.add_argument("--work", default="build/fast-kernel-benchmark", help="folder of the builds")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = [row for model in args.models for bits in args.bits
            for row in measure(model, bits, args.kernels, args.columns, work)]
    print(markdown_table(rows, HEADER))


if __name__ == "__main__":
    main()
