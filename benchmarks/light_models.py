"""Which of the onnx wheel's `light` zoo models compile (issue 12: "those without LRN compile").

The light models are real architectures whose weights come from ConstantOfShape (synthetic
values), so only whether they compile, and the time, memory and C size of the compile, mean
anything. Each runs ``pqc compile MODEL --calib RANDOM.npz --no-verify`` at the defaults (W8A8)
in a subprocess under ``/usr/bin/time -v`` (`scale_benchmark.time_v`), on 8 normal-distributed
calibration images of the model's input shape, and the table gives the exit status, the error
line of a refusal, wall time, peak memory, ``model.c`` bytes and table bytes.

    .venv/bin/python benchmarks/light_models.py                  # the six without LRN but VGG-19
    .venv/bin/python benchmarks/light_models.py --models light_vgg19.onnx light_bvlc_alexnet.onnx
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_benchmark import time_v  # noqa: E402

from pqc.frontend import load_onnx  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
#: the light models without LRN, VGG-19 (143 M parameters, most in its fully connected layers) left out
DEFAULT = ("light_squeezenet.onnx", "light_shufflenet.onnx", "light_inception_v2.onnx", "light_densenet121.onnx",
           "light_resnet50.onnx")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT), help="file names in the onnx wheel's light folder")
    args = p.parse_args(argv)
    print("| model | exit | wall | peak RSS | model.c bytes | table bytes | refusal |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="pqc_light_") as tmp:
        for name in args.models:
            graph = load_onnx(LIGHT / name)
            x = graph.inputs[0]
            calib = Path(tmp) / f"{name}.npz"
            np.savez(calib, **{x: np.random.default_rng(0).normal(0, 1, (8, *graph.values[x].shape[1:])).astype(np.float32)})
            out = Path(tmp) / name
            status, wall, rss, tail = time_v([sys.executable, "-m", "pqc.cli", "compile", str(LIGHT / name), "-o", str(out),
                                              "--calib", str(calib), "--no-verify", "-q"])
            refusal = next((line for line in tail.splitlines() if line.startswith("pqc: ")), "")[:160]
            sizes = "- | -"
            if status == 0:
                tables = json.loads((out / "report.json").read_text())["totals"]["weight_bytes"]
                sizes = f"{(out / 'model.c').stat().st_size:,} | {tables:,}"
            print(f"| {name} | {status} | {wall:.0f} s | {rss / 1024:,.0f} MiB | {sizes} | {refusal} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
