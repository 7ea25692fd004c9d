"""`pqc prune` and `pqc train`: AdaPruner channel pruning and (sparse) training of float ONNX models.

    pqc train model.onnx --data fashion-mnist --sparse-bn 1e-4 --epochs 5 -o sparse.onnx
    pqc prune sparse.onnx --flops 0.5 --train fashion-mnist --epochs 2 -o pruned.onnx

``prune`` writes the pruned, fine-tuned model and its report next to it: for ``-o pruned.onnx``,
``pruned.report.json``, ``pruned.report.md`` and, when matplotlib is installed, ``pruned.report.png``. A bare
``fashion-mnist`` means its training split here (``pqc.data`` otherwise defaults to test).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable

from . import arg_types, console
from .build_folder import check_file_target, staged_file
from .cli import EXIT_OK, _add_input_shape, _load_onnx

if TYPE_CHECKING:  # pragma: no cover
    from pqc.passes.adaprune.train import TrainConfig

    from .data import Dataset
    from .ir import Graph

REPORT_SUFFIX = ".report"


def _train_config(args: argparse.Namespace, sparse_bn: float = 0.0) -> "TrainConfig":
    """The training recipe from the shared flags (TrainConfig refuses bad values)."""
    from pqc.passes.adaprune.train import TrainConfig

    return TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, sparse_bn=sparse_bn,
                       hflip=args.hflip, seed=args.seed, device=args.device)


def _labelled(graph: "Graph", args: argparse.Namespace, flag: str) -> "Dataset":
    """The labelled data of ``--<flag>`` checked against ``graph`` (see `pqc.data_checks`)."""
    from .data_checks import checked_labelled

    return checked_labelled(graph, getattr(args, flag), f"--{flag}", training=flag != "eval")


def cmd_prune(args: argparse.Namespace) -> int:
    from .exporter import save_onnx
    from pqc.passes.adaprune import PruneConfig, adaprune
    from pqc.passes.adaprune.budget import BudgetRule
    from pqc.passes.adaprune.report import report_paths, write_prune_report

    out = check_file_target(args.output, args.force)
    stem = out.with_name(out.stem + REPORT_SUFFIX)
    for path in report_paths(stem).values():
        check_file_target(path, args.force)
    config = PruneConfig(
        flops=args.flops, rule=BudgetRule(k_min=args.k_min, c_min=args.c_min, round_to=args.round_to),
        criterion=args.criterion, val_samples=args.val_samples, calib_samples=args.calib_samples,
        uniform=args.uniform, train=_train_config(args),
    )
    graph = _load_onnx(args)
    train = _labelled(graph, args, "train")
    eval_data = _labelled(graph, args, "eval") if args.eval else None
    result = adaprune(graph, train, config, eval_data)
    with staged_file(out, args.force) as stage:
        save_onnx(result.graph, stage)
    written, note = write_prune_report(result.report, stem)
    budget = result.report["budget"]
    print(f"pruned {graph.name}: {budget['macs']} of {budget['original_macs']} MACs "
          f"({budget['ratio']:.4f}, budget {budget['flops']:g}); criterion {result.report['criteria']['chosen']}")
    acc = result.report["accuracy"]
    for key in acc["before"]:
        print(f"  top-1 ({key}): before {acc['before'][key]:.4f}, pruned {acc['pruned'][key]:.4f}, "
              f"fine-tuned {acc['fine_tuned'][key]:.4f}")
    console.info("wrote " + ", ".join(str(p) for p in [out, *written]))
    if note:
        console.info(f"note: {note}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .exporter import save_onnx
    from pqc.passes.adaprune.train import accuracy, train_graph

    out = check_file_target(args.output, args.force)
    config = _train_config(args, sparse_bn=args.sparse_bn)
    graph = _load_onnx(args)
    data = _labelled(graph, args, "data")
    eval_data = _labelled(graph, args, "eval") if args.eval else None
    result = train_graph(graph, data, config, desc="sparse train" if args.sparse_bn else "train")
    with staged_file(out, args.force) as stage:
        save_onnx(result.graph, stage)
    for h in result.history:
        print(f"epoch {h['epoch']}: loss {h['loss']:.4f}, train top-1 {h['train_accuracy']:.4f}")
    if eval_data is not None:
        print(f"top-1 on {eval_data.name}: before {accuracy(graph, eval_data, config.device):.4f}, "
              f"after {accuracy(result.graph, eval_data, config.device):.4f}")
    console.info(f"wrote {out} ({result.seconds:.1f}s training)")
    return EXIT_OK


def _add_training_flags(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--epochs", type=arg_types.non_negative, default=epochs, help=f"training epochs (default {epochs})")
    p.add_argument("--lr", type=float, default=0.01, help="initial SGD learning rate, cosine-annealed to 0 (default 0.01)")
    p.add_argument("--batch-size", type=arg_types.positive, default=128, help="training batch size (default 128)")
    p.add_argument("--hflip", action="store_true", help="augment with random horizontal flips")
    p.add_argument("--device", type=arg_types.torch_device, default="cpu", help="torch device: cpu (default), cuda, ...")
    p.add_argument("--seed", type=arg_types.seed, default=0, help="seed of the data order and random choices (default 0)")
    p.add_argument("--eval", metavar="DATA", help="labelled data to report top-1 on as well, e.g. fashion-mnist:test")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def add_parser(sub: argparse._SubParsersAction, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    from pqc.passes.adaprune.criteria import CRITERIA

    p = sub.add_parser(
        "prune", help="AdaPruner: prune channels of a float ONNX model to a MAC budget and fine-tune it",
        description="Prune whole channels (dependency-aware: residual adds, depthwise convs, concat, flatten) so "
                    "the MACs are at most --flops times the original's, choosing the kept channels by BN importance "
                    "and the best weight-inheritance criterion, then fine-tune. Needs a model with its "
                    "BatchNormalization nodes. Writes the pruned ONNX and <out>.report.json/.md next to it.")
    p.add_argument("model", help="float ONNX model with BatchNormalization nodes")
    _add_input_shape(p)
    p.add_argument("--flops", type=float, required=True, help="MAC budget as a fraction of the original, e.g. 0.5")
    p.add_argument("--train", required=True, help="labelled training data: fashion-mnist[:N] or an .npz with x and y")
    p.add_argument("-o", "--output", required=True, help="pruned ONNX model to write")
    p.add_argument("--criterion", default="auto", choices=["auto", *CRITERIA],
                   help="weight inheritance: auto (try all, keep the best held-out score; default) or one criterion")
    p.add_argument("--round-to", type=int, default=1, metavar="N", help="keep channel counts multiples of N (default 1)")
    p.add_argument("--k-min", type=float, default=0.1, help="smallest keep ratio of a block (default 0.1)")
    p.add_argument("--c-min", type=int, default=2, help="fewest channels a block keeps (default 2)")
    p.add_argument("--uniform", action="store_true", help="uniform-width pruning (same ratio everywhere) instead of BN importance")
    p.add_argument("--val-samples", type=int, default=1000, help="held-out training samples that score criteria (default 1000)")
    p.add_argument("--calib-samples", type=int, default=512, help="samples for BN recalibration (default 512)")
    _add_training_flags(p, epochs=1)
    add_common(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser(
        "train", help="train a float ONNX model, optionally with the L1 penalty on BN scales (sparse training)",
        description="Train a float ONNX model through the torch executor (SGD, cosine schedule) and export it. "
                    "--sparse-bn S adds S*sign(gamma) to every BN scale's gradient, which drives unimportant "
                    "channels' scales towards zero before pruning.")
    p.add_argument("model", help="float ONNX model")
    _add_input_shape(p)
    p.add_argument("--data", required=True, help="labelled training data: fashion-mnist[:N] or an .npz with x and y")
    p.add_argument("-o", "--output", required=True, help="trained ONNX model to write")
    p.add_argument("--sparse-bn", type=float, default=0.0, metavar="S", help="L1 strength on BN scales (e.g. 1e-4; default 0)")
    _add_training_flags(p, epochs=1)
    add_common(p)
    p.set_defaults(func=cmd_train)
