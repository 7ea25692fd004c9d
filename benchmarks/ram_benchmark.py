"""RAM of the reference models (and of unseen residual networks) under every schedule: activations
one per byte or packed, layer by layer or row-streamed; the arena, its live-set lower bound, the
step that sets the peak, the RAM the build needs against the micro:bit, and what each schedule
costs in instructions.

For each model and bit width the model is compiled once (no verification: the arena does not
depend on it); `pqc.backends.schedule.candidates` then gives the same program in each layout and
execution order (`bytes`/`packed` x `plain`/`streamed`, kernels selected for each; a candidate
identical to another is not listed: at W8A8 nothing packs). Reported per candidate: the arena and
its lower bound (the most aligned bytes live at one step of that schedule,
`pqc.backends.memory_plan.live_lower_bound`), the peak step, the RAM the build needs (arena +
input/output buffers + 1 KiB stack allowance, `pqc.backends.memory_report.RamFit`) against the
micro:bit's 16 KiB, the instructions of one inference on the Cortex-M0 image (mps2-an385 under
QEMU ``-icount``, bit-exact with the simulator or the run fails) and their ratio to layer by
layer with one byte per activation, and which candidate ``pqc compile`` picks without a budget
(``auto``) and with ``--ram-budget 16K`` (``16K``). With ``--accuracy`` also the integer
program's top-1 on the 10,000 Fashion-MNIST test images (the same for every candidate: the
integers are). ``W4A4/o4`` is W4A4 with ``--first-output-bits 4`` (8-bit first-layer weights,
the first layer's output at 4 bits so that it packs too).

Unseen models (``--models resnet-w20 resnet-w24``): ResNet-8's architecture (`BasicBlock`s of
examples/reference_models.py) at stem widths 20 and 24 (widest layer 20x28x28, 24x28x28),
random weights (the RAM does not depend on them), built and exported here.

    .venv/bin/python benchmarks/ram_benchmark.py --accuracy           # the README table
    .venv/bin/python benchmarks/ram_benchmark.py --models resnet-w24 --bits W4A4/o4
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
UNSEEN = {"resnet-w20": 20, "resnet-w24": 24}
MICROBIT_RAM = 16 << 10
BOARD = "mps2-an385"


def unseen_resnet(width: int, path: Path) -> Path:
    """ResNet-8 with stem width ``width`` (blocks width, 2x stride 2, 4x stride 2), random weights, as ONNX."""
    sys.path.insert(0, str(ROOT / "examples"))
    from reference_models import BasicBlock, conv_bn
    from torch import nn

    torch.manual_seed(width)
    model = nn.Sequential(conv_bn(1, width), nn.ReLU(), BasicBlock(width, width, 1),
                          BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 4 * width, 2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10)).eval()
    torch.onnx.export(model, (torch.randn(1, 1, 28, 28),), str(path), dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["logits"])
    return path


def measure(model: str, bits: str, accuracy: bool) -> list[dict]:
    from pqc import console
    from pqc.backends.c_emitter import emit_c, planned_memory
    from pqc.backends.firmware import random_inputs, run_firmware
    from pqc.backends.memory_report import peak_step, ram_needed, step_memory
    from pqc.backends.schedule import candidates, choose_schedule
    from pqc.driver import compile_model
    from pqc.passes.quantize import QuantizeOptions

    wbits, abits, first_out = BITS[bits]
    console.set_verbosity(console.QUIET)
    with tempfile.TemporaryDirectory(prefix=f"pqc_ram_{model}_") as tmp:
        onnx = unseen_resnet(UNSEEN[model], Path(tmp) / "m.onnx") if model in UNSEEN else \
            ROOT / "examples" / "models" / f"{model}.onnx"
        b = compile_model(onnx, Path(tmp) / "b", quant=QuantizeOptions(wbits=wbits, abits=abits,
                                                                      first_output_bits=first_out),
                          calib="fashion-mnist:train:256", verify=False, activations="bytes", schedule="plain",
                          eval_data="fashion-mnist:test" if accuracy and model not in UNSEEN else None)
        options = candidates(b.program, "speed", None)
        chosen = {"auto": choose_schedule(b.program, "speed", None).label,
                  "16K": choose_schedule(b.program, "speed", None, ram_budget=MICROBIT_RAM).label}
        x = random_inputs(b.program, 1)
        rows = []
        for c in options:
            out = Path(tmp) / c.label.replace("/", "_")
            emit_c(c.program, out)
            plan = planned_memory(c.program)
            peak = peak_step(step_memory(c.program, plan))
            fit = ram_needed(c.program, MICROBIT_RAM)
            rows.append({
                "model": model, "bits": bits, "schedule": c.label, "arena_bytes": plan.arena_bytes,
                "lower_bound_bytes": plan.arena_lower_bound_bytes, "ram_needed_bytes": fit.needed_bytes,
                "fits_microbit": fit.fits, "peak_step": peak.step, "peak_layer": peak.node, "peak_op": peak.op,
                "instructions": run_firmware(c.program, out, BOARD, x, out / "fw").instructions,
                "chosen": [k for k, v in chosen.items() if v == c.label],
                "int_top1": b.report["accuracy"]["int_top1"] if "accuracy" in b.report else None,
            })
    base = next(r["instructions"] for r in rows if r["schedule"] == "bytes/plain")
    for r in rows:
        r["vs_bytes_plain"] = r["instructions"] / base
    return rows


def markdown(rows: list[dict]) -> str:
    from pqc.summary import markdown_table

    return markdown_table(
        [[r["model"], r["bits"], r["schedule"], f"{r['arena_bytes']:,}", f"{r['lower_bound_bytes']:,}",
          f"{r['ram_needed_bytes']:,}", "yes" if r["fits_microbit"] else "no",
          f"{r['peak_step']} `{r['peak_layer']}` ({r['peak_op']})", f"{r['instructions']:,}",
          f"{r['vs_bytes_plain']:.3f}", ", ".join(r["chosen"]) or "-",
          "-" if r["int_top1"] is None else f"{100 * r['int_top1']:.2f}%"]
         for r in rows],
        ["model", "bits", "layout/schedule", "arena B", "lower bound B", "RAM needed B", "fits 16 KiB",
         "peak step (layer)", "M0 instr / inference", "vs bytes/plain", "chosen by", "integer top-1"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=[*MODELS, *UNSEEN])
    p.add_argument("--bits", nargs="+", default=list(BITS), choices=list(BITS))
    p.add_argument("--accuracy", action="store_true", help="also the integer top-1 on the Fashion-MNIST test set")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    for model in args.models:
        for bits in args.bits:
            rows += measure(model, bits, args.accuracy)
            print(f"{model} {bits}: " + ", ".join(f"{r['schedule']} {r['arena_bytes']:,} B" for r in rows
                                                   if r["model"] == model and r["bits"] == bits), file=sys.stderr)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
