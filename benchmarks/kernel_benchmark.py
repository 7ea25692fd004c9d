"""Kernel variants benchmark: each reference model under each ``--optimize`` goal, beside the int8 yardstick.

For each model (ResNet-8, tiny MobileNetV2, VGG-style by default), W4A4, W4A8 and W8A8 (lp quantizer)
and ``size``, ``balanced``, ``speed`` and ``speed --flash-budget 256K``: table bytes per parameter, Cortex-M0
flash of the model (text+data, the harness's Cortex-M0 build), its RAM as `pqc firmware` reports it
on mps2-an385 (data + bss + stack high-water) and instructions per MAC of one
inference on Cortex-M0 (mps2-an385) and RV32I (rv32-virt) under QEMU ``-icount`` (firmware
outputs bit-exact with the simulator, or the run fails).
In the same run, the same program written as plain int8 multiply-accumulate C
(`pqc.backends.yardstick`: ``acc += x * w``, int8 weights whatever the bit width) is measured
the same way, with the same flags and firmware, and each pqc row gets its ratio to it.

    .venv/bin/python benchmarks/kernel_benchmark.py [--models resnet8 mobilenetv2 vgg] [--work DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pqc.summary import markdown_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet8", "mobilenetv2", "vgg")  # examples/models/<name>.onnx
BITS = {"W4A4": (4, 4), "W4A8": (4, 8), "W8A8": (8, 8)}
#: (--optimize, --flash-budget) of each row
GOALS = (("size", None), ("balanced", None), ("speed", None), ("speed", 256 << 10))
BOARDS = ("mps2-an385", "rv32-virt")
HEADER = ["model", "bits", "--optimize", "conv/gemm kernels", "table bytes", "bytes / param", "Cortex-M0 flash B",
          "Cortex-M0 RAM B", "instr / MAC Cortex-M0", "instr / MAC RV32I", "pqc / int8: flash, Cortex-M0, RV32I"]


def figures(program: Any, folder: Path, macs: int, extra_libs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Cortex-M0 flash of the C in ``folder`` and its instructions per MAC on each board."""
    from pqc.backends.firmware import random_inputs, run_firmware
    from pqc.backends.harness import check_cortex_m0

    m0 = check_cortex_m0(folder).data
    runs = [run_firmware(program, folder, board, random_inputs(program, 1), folder / "fw" / board,
                         timeout_s=900, extra_libs=extra_libs) for board in BOARDS]
    return {"flash": m0["text"] + m0["data"], "per_mac": [r.instructions / macs for r in runs],
            "weights": runs[0].weights_bytes, "ram": runs[0].ram_bytes}


def measure(model: str, bits: str, work: Path) -> list[list[str]]:
    """The rows of one model at one bit width: each ``--optimize`` goal, then the int8 yardstick."""
    from pqc.backends.yardstick import emit_yardstick
    from pqc.driver import compile_model
    from pqc.passes.quantize import QuantizeOptions
    from pqc.summary import summarize

    wbits, abits = BITS[bits]
    rows = []
    for goal, budget in GOALS:
        out = work / f"{model}-{bits}-{goal}-{budget}"
        build = compile_model(ROOT / f"examples/models/{model}.onnx", out, quant=QuantizeOptions(wbits=wbits, abits=abits),
                              optimize=goal, flash_budget=budget, verify=False, force=True)
        goal = goal if budget is None else f"{goal} --flash-budget {budget >> 10}K"
        totals = summarize(build.float_graph)["totals"]
        fig = figures(build.program, out, totals["macs"])
        kernels = sorted({l["kernel"] for l in build.report["layers"] if l["op"] in ("QConv", "QGemm")})
        rows.append((goal, ", ".join(kernels), build.report["totals"]["weight_bytes"], fig))
    # --optimize picks kernels only: every goal's program is the same, so one yardstick serves all
    yard = figures(build.program, emit_yardstick(build.program, work / f"{model}-{bits}-int8"), totals["macs"],
                   extra_libs=("-lgcc",))  # RV32I has no multiplier: the MAC's `*` is libgcc's __mulsi3
    rows.append(("-", "int8 MAC yardstick", yard["weights"], yard))

    def cells(goal: str, kernels: str, table: int, fig: dict[str, Any]) -> list[str]:
        ratios = [fig["flash"] / yard["flash"], *(p / y for p, y in zip(fig["per_mac"], yard["per_mac"]))]
        return [model, bits, goal, kernels, f"{table:,}", f"{table / totals['params']:.3f}", f"{fig['flash']:,}", f"{fig['ram']:,}",
                *(f"{v:.1f}" for v in fig["per_mac"]), ", ".join(f"{r:.2f}" for r in ratios)]
    return [cells(*row) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="reference models")
    parser.add_argument("--work", default="build/kernel-benchmark", help="folder of the builds")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models:
        for bits in BITS:
            rows += measure(model, bits, work)
            print(markdown_table(rows[-5:], HEADER), file=sys.stderr, flush=True)  # progress: this model and width
    print(markdown_table(rows, HEADER))


if __name__ == "__main__":
    main()
