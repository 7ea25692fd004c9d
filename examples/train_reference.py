"""Train the reference models on Fashion-MNIST and export them as ONNX for pqc.

    python examples/train_reference.py --model all --device cuda --seed 0 --out examples/models

For each model this writes ``<out>/<name>.onnx`` (legacy exporter, opset 13 or `MODEL_OPSET`, BatchNormalization
nodes kept for pruning, input ``input`` [N,1,28,28] normalized as `pqc.data` does, output
``logits`` [N,10], dynamic batch) and ``<out>/<name>.json`` with the test accuracy and how it was
obtained. The recipe is the one measured in data/README.md: SGD with Nesterov momentum 0.9,
OneCycle to lr 0.1, batch 128, random horizontal flips, weight decay 5e-4. The whole data set
lives on the device as tensors, so a GPU run is not held back by data loading. Runs are
deterministic given ``--seed`` (bit-for-bit on CPU).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from pqc.data import Dataset, load_dataset
from pqc.errors import PqcError
from reference_models import MODELS, build

# Epochs that reach >= 90% test accuracy with margin (data/README.md: ResNet-8 92.6% after 8).
DEFAULT_EPOCHS = {"resnet8": 10, "mobilenetv2": 10, "vgg": 8, "mobilenetv3": 6}
BATCH_SIZE = 128
MAX_LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
EVAL_BATCH = 1000
ONNX_OPSET = 13
# Models exported at another opset: MobileNetV3 needs 14 so that nn.Hardswish becomes the HardSwish
# op, beside the decomposed hard-swish forms its other blocks write out.
MODEL_OPSET = {"mobilenetv3": 14}
ORT_CHECK_SAMPLES = 256
ORT_TOLERANCE = 1e-4


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=[*MODELS, "all"], default="all")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs for every chosen model (default per model: {DEFAULT_EPOCHS})")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("examples/models"))
    p.add_argument("--limit-train", type=int, default=None, metavar="N",
                   help="train on the first N training images only (smoke runs)")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs <= 0:
        p.error("--epochs must be positive")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        p.error(f"--device {args.device!r} is not a torch device (cpu, cuda, cuda:1, ...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: this torch build sees no CUDA device")
    return args


def train(model: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int,
          on_epoch: Callable[[int, float, float, float], None]) -> float:
    """Train in place with the reference recipe; return the seconds spent training.

    Shuffling and flips draw from a CPU generator seeded with ``seed``, so the sample order is the
    same on every device. ``on_epoch(epoch, loss, train_acc, seconds)`` reports progress.
    """
    n = len(x)
    steps_per_epoch = math.ceil(n / BATCH_SIZE)
    opt = torch.optim.SGD(model.parameters(), lr=MAX_LR, momentum=MOMENTUM, nesterov=True,
                          weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen).to(x.device)
        flips = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for i in range(0, n, BATCH_SIZE):
            idx = order[i:i + BATCH_SIZE]
            xb = x[idx]
            xb = torch.where(flips[i:i + BATCH_SIZE, None, None, None], xb.flip(3), xb)
            yb = y[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
        loss_avg, acc = loss_sum.item() / n, correct.item() / n  # .item() waits for the device
        seconds = time.perf_counter() - start
        total += seconds
        on_epoch(epoch, loss_avg, acc, seconds)
    return total


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on ``x``, ``y``."""
    model.eval()
    correct = sum(int((model(x[i:i + EVAL_BATCH]).argmax(1) == y[i:i + EVAL_BATCH]).sum())
                  for i in range(0, len(x), EVAL_BATCH))
    return correct / len(x)


def export_onnx(model: nn.Module, path: Path, sample: np.ndarray, opset: int = ONNX_OPSET) -> float:
    """Export with BN nodes kept and return onnxruntime's max abs difference from torch on ``sample``."""
    model = model.cpu().eval()
    x = torch.from_numpy(sample)
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (one file, a fixed opset, BN kept): silence its notice.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (x[:1],), str(path), dynamo=False, opset_version=opset, do_constant_folding=False,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    if not any(node.op_type == "BatchNormalization" for node in proto.graph.node):
        raise RuntimeError(f"{path}: the export folded away the BatchNormalization nodes")
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": sample})
    diff = float(np.abs(got - expected).max())
    if diff > ORT_TOLERANCE:
        raise RuntimeError(f"{path}: onnxruntime differs from torch by {diff:.3g} (> {ORT_TOLERANCE})")
    return diff


def run_one(name: str, args: argparse.Namespace, train_set: Dataset, test_set: Dataset) -> dict:
    """Train, evaluate and export one model; write its ONNX and JSON; return the JSON record."""
    device = torch.device(args.device)
    epochs = args.epochs or DEFAULT_EPOCHS[name]
    torch.manual_seed(args.seed)
    model = build(name).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"== {name}: {params} params, {epochs} epochs, {len(train_set)} train images, "
          f"device {device}, seed {args.seed}", flush=True)
    x_train, y_train = (torch.from_numpy(a).to(device) for a in (train_set.x, train_set.y))
    x_test, y_test = (torch.from_numpy(a).to(device) for a in (test_set.x, test_set.y))
    history = []

    def on_epoch(epoch: int, loss: float, train_acc: float, seconds: float) -> None:
        test_acc = evaluate(model, x_test, y_test)
        history.append({"epoch": epoch, "loss": round(loss, 5), "train_accuracy": round(train_acc, 5),
                        "test_accuracy": test_acc, "seconds": round(seconds, 2)})
        print(f"{name} epoch {epoch}/{epochs}  loss {loss:.4f}  train {train_acc:.2%}  "
              f"test {test_acc:.2%}  {seconds:.1f}s", flush=True)

    train_seconds = train(model, x_train, y_train, epochs, args.seed, on_epoch)
    accuracy = history[-1]["test_accuracy"]
    onnx_path = args.out / f"{name}.onnx"
    opset = MODEL_OPSET.get(name, ONNX_OPSET)
    diff = export_onnx(model, onnx_path, test_set.x[:ORT_CHECK_SAMPLES], opset)
    print(f"{name}: test accuracy {accuracy:.2%}, {train_seconds:.1f}s training, wrote {onnx_path} "
          f"(onnxruntime vs torch max abs diff {diff:.2e})", flush=True)
    record = {
        "model": name, "params": params, "test_accuracy": accuracy, "test_samples": len(test_set),
        "epochs": epochs, "seed": args.seed, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "train_samples": len(train_set), "train_seconds": round(train_seconds, 2),
        "torch_version": torch.__version__,
        "recipe": {"optimizer": "SGD nesterov", "momentum": MOMENTUM, "schedule": "OneCycle",
                   "max_lr": MAX_LR, "batch_size": BATCH_SIZE, "weight_decay": WEIGHT_DECAY,
                   "augment": "random horizontal flip", "normalize": "pqc.data Fashion-MNIST mean/std"},
        "onnx": onnx_path.name, "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "onnx_opset": opset, "ort_max_abs_diff": diff, "history": history,
    }
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        train_set = load_dataset("fashion-mnist:train" + (f":{args.limit_train}" if args.limit_train is not None else ""))
        test_set = load_dataset("fashion-mnist:test")
    except PqcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(MODELS) if args.model == "all" else [args.model]
    records = [run_one(name, args, train_set, test_set) for name in names]
    for r in records:
        print(f"{r['model']:12s} {r['params']:6d} params  {r['epochs']:2d} epochs  "
              f"{r['test_accuracy']:.2%}  {r['train_seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
