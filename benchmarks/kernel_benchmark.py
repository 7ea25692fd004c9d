"""Kernel variants benchmark: ResNet-8 compiled with each ``--optimize`` goal.

For W4A4 and W8A8 (lp quantizer) and ``size``, ``balanced``, ``speed``: constant-table bytes
per weight parameter, Cortex-M0 flash of the model (text+data, the harness's Cortex-M0 build)
and instructions per MAC of one inference on Cortex-M0 (mps2-an385) and RV32I (rv32-virt)
under QEMU ``-icount`` (firmware outputs bit-exact with the simulator, or the run fails).

    .venv/bin/python benchmarks/kernel_benchmark.py [--work DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BITS = {"W4A4": (4, 4), "W8A8": (8, 8)}
GOALS = ("size", "balanced", "speed")
BOARDS = ("mps2-an385", "rv32-virt")


def measure(bits: str, goal: str, work: Path) -> list[str]:
    from pqc.backends.firmware import random_inputs, run_firmware
    from pqc.backends.harness import check_cortex_m0
    from pqc.driver import compile_model
    from pqc.passes.quantize import QuantizeOptions
    from pqc.summary import summarize

    wbits, abits = BITS[bits]
    out = work / f"resnet8-{bits}-{goal}"
    build = compile_model(ROOT / "examples/models/resnet8.onnx", out, quant=QuantizeOptions(wbits=wbits, abits=abits),
                          optimize=goal, verify=False, force=True)
    totals = summarize(build.float_graph)["totals"]
    m0 = check_cortex_m0(out).data
    per_mac = [run_firmware(build.program, out, board, random_inputs(build.program, 1), out / "fw" / board,
                            timeout_s=900).instructions / totals["macs"] for board in BOARDS]
    kernels = sorted({l["kernel"] for l in build.report["layers"] if l["op"] in ("QConv", "QGemm")})
    return [bits, goal, ", ".join(kernels), f"{build.report['totals']['weight_bytes']:,}",
            f"{build.report['totals']['weight_bytes'] / totals['params']:.2f}",
            f"{m0['text'] + m0['data']:,}", *(f"{v:.1f}" for v in per_mac)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="build/kernel-benchmark", help="folder of the builds")
    args = parser.parse_args()
    header = ["bits", "--optimize", "conv/gemm kernels", "table bytes", "bytes / param", "Cortex-M0 flash B",
              "instr / MAC Cortex-M0", "instr / MAC RV32I"]
    rows = [measure(bits, goal, Path(args.work)) for bits in BITS for goal in GOALS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
