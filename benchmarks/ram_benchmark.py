"""RAM of the reference models: the arena with one activation per byte and packed, its live-set
lower bound, the step that sets the peak, the RAM the build needs against the micro:bit, and what
packing costs in instructions.

For each model and bit width the model is compiled once with ``--activations bytes`` (no
verification: the arena does not depend on it); `pack_activations` then lays the same program
out packed, its kernels unchanged. Reported: the arena of each layout, the packed plan's lower
bound (the most aligned bytes live at one step, `pqc.backends.memory_plan.live_lower_bound`) and
peak step, the RAM the packed build needs (arena + input/output buffers + stack allowance,
`pqc.backends.memory_report.RamFit`) against the micro:bit's 16 KiB, and the instructions of one
inference of each layout on the Cortex-M0 image (mps2-an385 under QEMU ``-icount``, bit-exact
with the simulator or the run fails), so the ratio is the unpacking cost alone; with
``--accuracy`` also the integer program's top-1 on the 10,000 Fashion-MNIST test images (the
same for both layouts: the integers are). ``W4A4/o4`` is
W4A4 with ``--first-output-bits 4`` (8-bit first-layer weights, the first layer's output at 4
bits so that it packs too).

    .venv/bin/python benchmarks/ram_benchmark.py --accuracy           # the README table
    .venv/bin/python benchmarks/ram_benchmark.py --models resnet8 --bits W4A4/o4
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
#: (wbits, abits, first_output_bits)
BITS = {"W8A8": (8, 8, None), "W4A4": (4, 4, None), "W4A4/o4": (4, 4, 4)}
MODELS = ("resnet8", "mobilenetv2", "vgg")
MICROBIT_RAM = 16 << 10
BOARD = "mps2-an385"


def measure(model: str, bits: str, accuracy: bool) -> dict:
    from pqc import console
    from pqc.backends.activation_layout import pack_activations
    from pqc.backends.c_emitter import emit_c, planned_memory
    from pqc.backends.firmware import random_inputs, run_firmware
    from pqc.backends.memory_report import ram_needed
    from pqc.driver import compile_model
    from pqc.passes.quantize import QuantizeOptions

    wbits, abits, first_out = BITS[bits]
    console.set_verbosity(console.QUIET)
    with tempfile.TemporaryDirectory(prefix=f"pqc_ram_{model}_") as tmp:
        b = compile_model(ROOT / "examples" / "models" / f"{model}.onnx", Path(tmp) / "b",
                          quant=QuantizeOptions(wbits=wbits, abits=abits, first_output_bits=first_out),
                          calib="fashion-mnist:train:256", verify=False, activations="bytes",
                          eval_data="fashion-mnist:test" if accuracy else None)
        programs = {"bytes": b.program, "packed": pack_activations(b.program)}
        x = random_inputs(b.program, 1)
        instructions = {}
        for layout, program in programs.items():
            out = Path(tmp) / layout
            emit_c(program, out)
            instructions[layout] = run_firmware(program, out, BOARD, x, out / "fw").instructions
    plans = {layout: planned_memory(g) for layout, g in programs.items()}
    fit = ram_needed(programs["packed"], MICROBIT_RAM)
    peak = fit.peak
    return {
        "model": model, "bits": bits, "bytes_arena_bytes": plans["bytes"].arena_bytes,
        "packed_arena_bytes": plans["packed"].arena_bytes,
        "lower_bound_bytes": plans["packed"].arena_lower_bound_bytes,
        "packed_values": sum(1 for v in programs["packed"].values.values() if v.meta.get("packed_bits")),
        "peak_step": peak.step, "peak_layer": peak.node, "peak_op": peak.op, "peak_buffers": dict(peak.buffers),
        "ram_needed_bytes": fit.needed_bytes, "fits_microbit": fit.fits,
        "bytes_instructions": instructions["bytes"], "packed_instructions": instructions["packed"],
        "int_top1": b.report["accuracy"]["int_top1"] if accuracy else None,
    }


def markdown(rows: list[dict]) -> str:
    from pqc.summary import markdown_table

    return markdown_table(
        [[r["model"], r["bits"], f"{r['bytes_arena_bytes']:,}", f"{r['packed_arena_bytes']:,}",
          f"{r['lower_bound_bytes']:,}", str(r["packed_values"]),
          f"{r['peak_step']} `{r['peak_layer']}` ({r['peak_op']})", f"{r['ram_needed_bytes']:,}",
          "yes" if r["fits_microbit"] else "no", f"{r['bytes_instructions']:,}", f"{r['packed_instructions']:,}",
          f"{100 * (r['packed_instructions'] / r['bytes_instructions'] - 1):+.1f}%"]
         + ([f"{100 * r['int_top1']:.2f}%"] if r["int_top1"] is not None else [])
         for r in rows],
        ["model", "bits", "arena, bytes B", "arena, packed B", "lower bound B", "packed values",
         "peak step (layer)", "RAM needed B", "fits 16 KiB", "M0 instr, bytes", "M0 instr, packed", "packing"]
        + (["integer top-1"] if rows and rows[0]["int_top1"] is not None else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--bits", nargs="+", default=list(BITS), choices=list(BITS))
    p.add_argument("--accuracy", action="store_true", help="also the integer top-1 on the Fashion-MNIST test set")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    for model in args.models:
        for bits in args.bits:
            rows.append(measure(model, bits, args.accuracy))
            print(f"{model} {bits}: arena {rows[-1]['packed_arena_bytes']:,} B packed", file=sys.stderr)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
