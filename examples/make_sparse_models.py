"""Make sparse versions of the reference models for AdaPruner: fine-tune with an L1 penalty on BN scales.

    python examples/make_sparse_models.py --model all --epochs 2 --device cpu --out examples/models

For each model this reads ``<models>/<name>.onnx`` (written by train_reference.py), trains it on
the Fashion-MNIST training split with ``s * sign(gamma)`` added to every BN scale's gradient
(Network Slimming; ``s`` = 1e-4 for the plain VGG net, 1e-5 for the residual nets, as
algorithms/adapruner.md suggests), and writes ``<out>/<name>_sparse.onnx`` plus
``<out>/<name>_sparse.json`` with the test accuracy before and after and how many BN scales
ended near zero. One sparse model serves every pruning budget.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pqc.data import load_dataset
from pqc.errors import PqcError
from pqc.exporter import save_onnx
from pqc.frontend import load_onnx
from pqc.passes.adaprune.train import TrainConfig, accuracy, bn_gamma_names, train_graph

STRENGTH = {"resnet8": 1e-5, "mobilenetv2": 1e-5, "vgg": 1e-4}
NEAR_ZERO = 1e-2  # |gamma| below this counts as switched off


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=[*STRENGTH, "all"], default="all")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01, help="initial learning rate, cosine-annealed (default 0.01)")
    p.add_argument("--sparse-bn", type=float, default=None, help=f"L1 strength for every model (default per model: {STRENGTH})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", type=Path, default=Path(__file__).resolve().parent / "models", help="folder of the dense models")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    p.add_argument("--limit-train", type=int, default=None, metavar="N", help="train on the first N images (smoke runs)")
    return p.parse_args(argv)


def near_zero_share(graph) -> float:
    gammas = np.concatenate([np.abs(graph.const(name)) for name in bn_gamma_names(graph)])
    return float((gammas < NEAR_ZERO).mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        train = load_dataset("fashion-mnist:train" + (f":{args.limit_train}" if args.limit_train else ""))
        test = load_dataset("fashion-mnist:test")
        args.out.mkdir(parents=True, exist_ok=True)
        for name in STRENGTH if args.model == "all" else [args.model]:
            strength = STRENGTH[name] if args.sparse_bn is None else args.sparse_bn
            graph = load_onnx(args.models / f"{name}.onnx")
            config = TrainConfig(epochs=args.epochs, lr=args.lr, sparse_bn=strength, hflip=True, seed=args.seed,
                                 device=args.device)
            result = train_graph(graph, train, config, desc=f"{name} sparse")
            record = {
                "model": name, "sparse_bn": strength, "epochs": args.epochs, "lr": args.lr, "device": args.device,
                "train_samples": len(train), "seconds": round(result.seconds, 1),
                "test_accuracy_before": accuracy(graph, test, args.device),
                "test_accuracy": accuracy(result.graph, test, args.device),
                "bn_scales_near_zero_before": near_zero_share(graph),
                "bn_scales_near_zero": near_zero_share(result.graph), "near_zero_threshold": NEAR_ZERO,
                "history": result.history,
            }
            save_onnx(result.graph, args.out / f"{name}_sparse.onnx")
            (args.out / f"{name}_sparse.json").write_text(json.dumps(record, indent=2) + "\n")
            print(f"{name}: test top-1 {record['test_accuracy_before']:.4f} -> {record['test_accuracy']:.4f}, "
                  f"BN scales < {NEAR_ZERO}: {record['bn_scales_near_zero_before']:.1%} -> "
                  f"{record['bn_scales_near_zero']:.1%} ({record['seconds']} s)", flush=True)
    except PqcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
