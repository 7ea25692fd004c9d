"""RAM of the reference models: the arena as planned, its live-set lower bound, the step that sets
the peak, and what running elementwise ops in place saves.

For each model and bit width the model is compiled (no verification: the arena does not depend
on it) and its plan read back from the build: arena bytes, the lower bound (the most aligned bytes
live at one step, `pqc.backends.memory_plan.live_lower_bound`), the arena without in-place
elementwise ops, the peak step's layer and its scratch bytes, the lower bound if no kernel needed
scratch (what border handling inside the kernels can reach at best), and the RAM the build needs
(arena + input/output buffers + stack allowance, `pqc.backends.memory_report.RamFit`) against the
micro:bit's 16 KiB.

    .venv/bin/python benchmarks/ram_benchmark.py                      # the README table
    .venv/bin/python benchmarks/ram_benchmark.py --models resnet8 --bits W4A4
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BITS = {"W8A8": (8, 8), "W4A4": (4, 4)}
MODELS = ("resnet8", "mobilenetv2", "vgg")
MICROBIT_RAM = 16 << 10


def measure(model: str, bits: str) -> dict:
    from pqc import console
    from pqc.backends.c_emitter import planned_memory
    from pqc.backends.memory_plan import plan_memory, scratch_name
    from pqc.backends.memory_report import ram_needed
    from pqc.driver import compile_model
    from pqc.passes.quantize import QuantizeOptions

    wbits, abits = BITS[bits]
    console.set_verbosity(console.QUIET)
    with tempfile.TemporaryDirectory(prefix=f"pqc_ram_{model}_") as tmp:
        b = compile_model(ROOT / "examples" / "models" / f"{model}.onnx", Path(tmp) / "b",
                          quant=QuantizeOptions(wbits=wbits, abits=abits), calib="fashion-mnist:train:256",
                          verify=False)
    program = b.program
    plan = planned_memory(program)
    scratch = {n.name: plan.buffers[scratch_name(n.name)][1] for n in program.nodes
               if scratch_name(n.name) in plan.buffers}
    fit = ram_needed(program, MICROBIT_RAM)
    peak = fit.peak
    return {
        "model": model, "bits": bits, "arena_bytes": plan.arena_bytes,
        "lower_bound_bytes": plan.arena_lower_bound_bytes,
        "no_in_place_arena_bytes": plan_memory(program, scratch, in_place=False).arena_bytes,
        "no_scratch_lower_bound_bytes": plan_memory(program, {}).arena_lower_bound_bytes,
        "scratch_at_peak_bytes": sum(size for n, size in peak.buffers if n == scratch_name(peak.node)),
        "peak_step": peak.step, "peak_layer": peak.node, "peak_op": peak.op, "peak_buffers": dict(peak.buffers),
        "ram_needed_bytes": fit.needed_bytes, "fits_microbit": fit.fits,
        "report_arena_bytes": b.report["totals"]["arena_bytes"],
    }


def markdown(rows: list[dict]) -> str:
    from pqc.summary import markdown_table

    return markdown_table(
        [[r["model"], r["bits"], f"{r['arena_bytes']:,}", f"{r['lower_bound_bytes']:,}",
          f"{r['no_in_place_arena_bytes']:,}", f"{r['peak_step']} `{r['peak_layer']}` ({r['peak_op']})",
          f"{r['scratch_at_peak_bytes']:,}", f"{r['no_scratch_lower_bound_bytes']:,}", f"{r['ram_needed_bytes']:,}",
          "yes" if r["fits_microbit"] else "no"]
         for r in rows],
        ["model", "bits", "arena B", "lower bound B", "arena without in place B", "peak step (layer)",
         "scratch at peak B", "lower bound without scratch B", "RAM needed B", "fits 16 KiB"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--bits", nargs="+", default=list(BITS), choices=list(BITS))
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    for model in args.models:
        for bits in args.bits:
            rows.append(measure(model, bits))
            if rows[-1]["report_arena_bytes"] != rows[-1]["arena_bytes"]:
                raise SystemExit(f"{model} {bits}: the report's arena differs from the plan's")
            print(f"{model} {bits}: arena {rows[-1]['arena_bytes']:,} B", file=sys.stderr)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
