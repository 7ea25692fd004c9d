"""Compile time, peak memory and C size on an ImageNet-size network (issue 12, item 6).

MobileNetV3-Large at 224x224 with 1,000 classes (5.5 M parameters, about 220 M MACs), built here
from its published definition (the blocks of examples/reference_models.py: depthwise 3x3/5x5,
squeeze-excite, hard-swish) with random weights and random BatchNorm statistics: compile time
and memory do not depend on the values, and no pretrained weights can be fetched here. Each
configuration runs ``pqc compile`` in a subprocess under ``/usr/bin/time -v`` (wall time and
peak resident memory of the whole compile, verification included unless ``--no-verify``), with
calibration and verification inputs drawn from a normal distribution, and reports the stage
times of ``timings.json``, the size of ``model.c`` and the constant-table bytes.

    .venv/bin/python benchmarks/scale_benchmark.py                       # W8A8 with verification
    .venv/bin/python benchmarks/scale_benchmark.py --configs w8a8 rapq-w4a8
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from reference_models import InvertedResidualV3, conv_bn  # noqa: E402

#: MobileNetV3-Large (Howard et al. 2019, table 1): kernel, expansion, output, SE, activation, stride
LARGE = (
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1),
)
CONFIGS = {
    "w8a8": ["--wbits", "8", "--abits", "8"],
    "rapq-w4a8": ["--method", "rapq", "--wbits", "4", "--abits", "8", "--mode", "quick"],
}


def mobilenetv3_large(num_classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2), nn.Hardswish()]
    cin = 16
    for kernel, hidden, cout, se, act, stride in LARGE:
        layers.append(InvertedResidualV3(cin, kernel, hidden, cout, se, act, stride))
        cin = cout
    layers += [conv_bn(cin, 960, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(960, 1280), nn.Hardswish(), nn.Linear(1280, num_classes)]
    model = nn.Sequential(*layers)
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():  # BN statistics of a trained network: no channel all zeros or all equal
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.1, generator=gen)
    return model.eval()


def time_v(cmd: list[str]) -> tuple[int, float, int, str]:
    """Run ``cmd`` under ``/usr/bin/time -v``: exit status, wall seconds, peak RSS in KiB, stderr tail."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = (float(g or 0) for g in wall.groups())
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return proc.returncode, 3600 * h + 60 * m + s, rss, proc.stderr[-2000:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["w8a8"], choices=list(CONFIGS))
    p.add_argument("--calib", type=int, default=64, help="calibration images (default 64)")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--work", help="keep the builds in this folder (default: a temporary one)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model = mobilenetv3_large()
    params = sum(t.numel() for t in model.parameters())
    rows = []
    with tempfile.TemporaryDirectory(prefix="pqc_scale_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        onnx = work / "mobilenetv3_large.onnx"
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(onnx), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})  # RAPQ runs batches
        rng = np.random.default_rng(0)
        calib = work / "calib.npz"
        np.savez(calib, input=rng.normal(0, 1, (args.calib, 3, 224, 224)).astype(np.float32))
        for name in args.configs:
            out = work / name
            cmd = [sys.executable, "-m", "pqc.cli", "compile", str(onnx), "-o", str(out), "--force", "--calib",
                   str(calib), *CONFIGS[name], *(["--no-verify"] if args.no_verify else []), "-q"]
            status, wall, rss, tail = time_v(cmd)
            if status != 0:
                print(f"{name}: pqc compile exited {status}:\n{tail}", file=sys.stderr)
                rows.append({"config": name, "status": status, "wall_s": wall, "peak_rss_mib": rss / 1024})
                continue
            report = json.loads((out / "report.json").read_text())
            stages = {s["name"]: s["seconds"] for s in json.loads((out / "timings.json").read_text())["stages"]}
            rows.append({
                "config": name, "status": status, "params": params, "macs": report["totals"].get("macs"),
                "wall_s": wall, "peak_rss_mib": rss / 1024, "stages": stages,
                "model_c_bytes": (out / "model.c").stat().st_size, "table_bytes": report["totals"]["weight_bytes"],
                "verified": report.get("verification", {}).get("ok"),
            })
            print(f"{name}: {wall:.0f} s, {rss / 1024:,.0f} MiB", file=sys.stderr)
    for r in rows:
        if r["status"] == 0:
            top = sorted(r["stages"].items(), key=lambda kv: -kv[1])[:6]
            print(f"| {r['config']} | {r['params']:,} | {r['wall_s']:.0f} s | {r['peak_rss_mib']:,.0f} MiB | "
                  f"{r['model_c_bytes']:,} | {r['table_bytes']:,} | {r['verified']} | "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in top) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
