"""AdaPruner against uniform-width pruning: accuracy, fine-tune time, and the size and cost of the C.

    python benchmarks/prune_benchmark.py --models vgg --budgets 0.5 --epochs 1 --device cpu

For each reference model (examples/models, or its ``_sparse`` version with ``--sparse``) this
prints the dense baseline and, per MAC budget, two pruned networks that meet the same budget:
``adapruner`` (BN-importance channel counts) and ``uniform`` (the same keep ratio in every
prunable group). Both pick their weight inheritance adaptively and are fine-tuned with the same
recipe on the Fashion-MNIST training split (minus a held-out part); accuracy is top-1 on the test
split. Each network is then compiled to C with the default 8-bit pipeline and verified
bit-exactly; flash bytes (Cortex-M0 build, when the toolchain exists) and adds per inference come
from its compile report. ``--rapq`` adds the integer accuracy after W4A4 RAPQ (slow on CPU).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from pqc import console
from pqc.data import load_dataset
from pqc.driver import compile_model
from pqc.passes.rapq import RapqOptions
from pqc.errors import PqcError
from pqc.exporter import save_onnx
from pqc.frontend import load_onnx
from pqc.ir import Graph
from pqc.passes.adaprune import PruneConfig, adaprune
from pqc.passes.adaprune.train import TrainConfig, accuracy
from pqc.summary import summarize

MODELS_DIR = Path(__file__).resolve().parents[1] / "examples" / "models"
ALL_MODELS = ("resnet8", "mobilenetv2", "vgg")
METHODS = ("adapruner", "uniform")
CALIB_SAMPLES = 256


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(ALL_MODELS), help=f"comma-separated subset of {', '.join(ALL_MODELS)}")
    p.add_argument("--budgets", default="0.7,0.5", help="comma-separated MAC budgets (default 0.7,0.5)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default 1)")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-samples", type=int, default=None, help="use the first N training images (default all)")
    p.add_argument("--test-samples", type=int, default=None, help="evaluate on the first N test images (default all)")
    p.add_argument("--sparse", action="store_true", help="start from <model>_sparse.onnx (make_sparse_models.py)")
    p.add_argument("--rapq", action="store_true", help="also compile with W4A4 RAPQ and report its integer accuracy")
    p.add_argument("--no-compile", action="store_true", help="skip compiling to C (no flash/adds columns)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    p.add_argument("--save-dir", type=Path, help="also write each pruned model as <model>_<budget>_<method>.onnx here")
    args = p.parse_args(argv)
    args.models = _subset(p, args.models, ALL_MODELS, "--models")
    args.methods = _subset(p, args.methods, METHODS, "--methods")
    try:
        args.budgets = [float(b) for b in args.budgets.split(",")]
    except ValueError:
        p.error(f"--budgets {args.budgets!r}: expected comma-separated fractions such as 0.7,0.5")
    return args


def _subset(p: argparse.ArgumentParser, text: str, known: Sequence[str], flag: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        p.error(f"{flag}: unknown {unknown}; choose from {', '.join(known)}")
    return chosen


def compile_numbers(graph: Graph, calib, test_spec: str, rapq: bool) -> dict[str, Any]:
    """Flash bytes and adds of the verified 8-bit C and, with ``rapq``, the W4A4 RAPQ integer top-1."""
    numbers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        totals = compile_model(graph, Path(tmp) / "int8", calib=calib, verify=True).report["totals"]
        numbers.update(flash_bytes=totals.get("flash_bytes"), adds=totals["adds"])
        if rapq:
            build = compile_model(graph, Path(tmp) / "rapq", calib=calib, quant=RapqOptions(wbits=4, abits=4),
                                  verify=False, eval_data=test_spec)
            numbers["rapq_w4a4_top1"] = build.report["accuracy"]["int_top1"]
    return numbers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    console.set_verbosity(console.QUIET)
    rows: list[dict[str, Any]] = []
    try:
        train = load_dataset("fashion-mnist:train" + (f":{args.train_samples}" if args.train_samples else ""))
        test_spec = "fashion-mnist:test" + (f":{args.test_samples}" if args.test_samples else "")
        test = load_dataset(test_spec)
        calib = train.x[:CALIB_SAMPLES]
        for name in args.models:
            graph = load_onnx(MODELS_DIR / f"{name}{'_sparse' if args.sparse else ''}.onnx")
            dense = {"model": name, "budget": 1.0, "method": "dense", "macs": summarize(graph)["totals"]["macs"],
                     "params": summarize(graph)["totals"]["params"], "top1": accuracy(graph, test, args.device),
                     "criterion": "", "fine_tune_s": 0.0}
            if not args.no_compile:
                dense.update(compile_numbers(graph, calib, test_spec, args.rapq))
            rows.append(dense)
            _print_row(dense)
            for budget in args.budgets:
                for method in args.methods:
                    config = PruneConfig(flops=budget, uniform=method == "uniform",
                                         train=TrainConfig(epochs=args.epochs, lr=args.lr, hflip=True, device=args.device))
                    start = time.perf_counter()
                    result = adaprune(graph, train, config, eval_data=test)
                    report = result.report
                    row = {"model": name, "budget": budget, "method": method, "macs": report["budget"]["macs"],
                           "params": report["totals"]["params"]["after"],
                           "top1": report["accuracy"]["fine_tuned"]["eval"],
                           "top1_pruned": report["accuracy"]["pruned"]["eval"],
                           "criterion": report["criteria"]["chosen"], "fine_tune_s": report["fine_tune"]["seconds"],
                           "total_s": round(time.perf_counter() - start, 1)}
                    if not args.no_compile:
                        row.update(compile_numbers(result.graph, calib, test_spec, args.rapq))
                    if args.save_dir:
                        args.save_dir.mkdir(parents=True, exist_ok=True)
                        save_onnx(result.graph, args.save_dir / f"{name}_{budget:g}_{method}.onnx")
                    rows.append(row)
                    _print_row(row)
    except PqcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print()
    print(format_markdown(rows, args))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _print_row(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def format_markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The README table: one line per network, MACs and C costs relative to the dense model."""
    dense = {r["model"]: r for r in rows if r["method"] == "dense"}
    header = ["model", "budget", "method", "MACs", "params", "criterion", "top-1 pruned", "top-1 fine-tuned",
              "fine-tune s", "flash B", "adds"] + (["W4A4 RAPQ top-1"] if args.rapq else [])
    table = []
    for r in rows:
        base = dense[r["model"]]
        flash = r.get("flash_bytes")
        table.append([
            r["model"], f"{r['budget']:g}", r["method"], f"{r['macs']:,} ({r['macs'] / base['macs']:.3f})",
            f"{r['params']:,}", r["criterion"] or "-", f"{r['top1_pruned']:.4f}" if "top1_pruned" in r else "-",
            f"{r['top1']:.4f}", f"{r['fine_tune_s']:.1f}",
            f"{flash:,} ({flash / base['flash_bytes']:.3f})" if flash and base.get("flash_bytes") else "-",
            f"{r['adds']:,} ({r['adds'] / base['adds']:.3f})" if "adds" in r else "-",
        ] + ([f"{r['rapq_w4a4_top1']:.4f}"] if args.rapq else []))
    return "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "\n".join(
        "| " + " | ".join(cells) + " |" for cells in table)


if __name__ == "__main__":
    sys.exit(main())
