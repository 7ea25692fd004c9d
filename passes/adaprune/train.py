"""Training a float IR graph through the torch executor: fine-tuning, sparse training, BN recalibration.

`train_graph` is one SGD loop (Nesterov momentum, cosine learning-rate schedule, optional random
horizontal flips) used both to fine-tune a pruned network and, with ``sparse_bn > 0``, for the
sparse training that makes BatchNormalization scales informative before pruning (Network
Slimming's L1 penalty, applied by `add_bn_l1_grad` as ``s * sign(gamma)`` added to each
gamma's gradient). `recalibrate_bn` re-estimates BN running statistics after pruning, which is
how weight-inheritance candidates are compared fairly without training them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from pqc import console
from pqc.data import Dataset
from pqc.errors import DataError, PqcError
from pqc.executor import FloatExecutor
from pqc.ir import Graph

EVAL_BATCH = 1000


@dataclass(frozen=True)
class TrainConfig:
    """The SGD recipe: ``lr`` is the cosine schedule's start, annealed to 0 over all steps."""

    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    sparse_bn: float = 0.0
    hflip: bool = False
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.sparse_bn < 0:
            raise PqcError(
                f"training needs epochs >= 0, batch_size >= 1, lr > 0 and sparse_bn >= 0; got epochs={self.epochs}, "
                f"batch_size={self.batch_size}, lr={self.lr}, sparse_bn={self.sparse_bn}"
            )


@dataclass
class TrainResult:
    """The trained graph, seconds spent in the loop, and per-epoch mean loss and train accuracy."""

    graph: Graph
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def bn_gamma_names(graph: Graph) -> list[str]:
    """The IR names of every BatchNormalization scale (gamma) of ``graph``."""
    return [node.inputs[1] for node in graph.nodes if node.op == "BatchNormalization"]


def add_bn_l1_grad(executor: FloatExecutor, strength: float, gammas: list[str] | None = None) -> None:
    """Add the L1 sub-gradient ``strength * sign(gamma)`` to every BN gamma's gradient.

    Call between ``loss.backward()`` and ``optimizer.step()``; gammas without a gradient are skipped.
    """
    for name in bn_gamma_names(executor.graph) if gammas is None else gammas:
        gamma = executor.param(name)
        if gamma.grad is not None:
            gamma.grad.add_(torch.sign(gamma.detach()), alpha=strength)


def _labelled(data: Dataset) -> np.ndarray:
    if data.y is None:
        raise DataError(f"{data.name}: training and scoring need labels 'y'")
    return data.y


def train_graph(graph: Graph, data: Dataset, config: TrainConfig = TrainConfig(), desc: str = "train") -> TrainResult:
    """Train a copy of ``graph`` on ``data`` (cross-entropy on its first output) with ``config``."""
    labels = _labelled(data)
    if config.epochs == 0:
        return TrainResult(graph.copy(), 0.0)
    device = torch.device(config.device)
    model = FloatExecutor(graph, device=device)
    x, y = torch.from_numpy(data.x).to(device), torch.from_numpy(labels).to(device)
    steps = math.ceil(len(x) / config.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                                weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
    generator = torch.Generator().manual_seed(config.seed)
    gammas = bn_gamma_names(model.graph)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(x), generator=generator).to(device)
        flips = (torch.rand(len(x), generator=generator) < 0.5).to(device) if config.hflip else None
        loss_sum, correct = 0.0, 0
        loss_now = [math.nan]
        batches = console.progress(range(0, len(x), config.batch_size), f"{desc} epoch {epoch}/{config.epochs}",
                                   total=steps, status=lambda: f"loss {loss_now[0]:.4f}")
        for first in batches:
            idx = order[first:first + config.batch_size]
            xb, yb = x[idx], y[idx]
            if flips is not None:
                xb = torch.where(flips[idx, None, None, None], xb.flip(3), xb)
            (logits,) = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.sparse_bn > 0:
                add_bn_l1_grad(model, config.sparse_bn, gammas)
            optimizer.step()
            schedule.step()
            loss_now[0] = float(loss.detach())
            loss_sum += loss_now[0] * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        history.append({"epoch": epoch, "loss": loss_sum / len(x), "train_accuracy": correct / len(x)})
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model.to_graph(), seconds, history)


def recalibrate_bn(graph: Graph, x: np.ndarray, device: str = "cpu") -> Graph:
    """A copy of ``graph`` whose BN running statistics are those of the batch ``x``.

    One training-mode forward with BN momentum 0 (ONNX meaning: the running value is replaced),
    so the statistics are exactly ``x``'s; nothing else changes.
    """
    work = graph.copy()
    momenta = {}
    for node in work.nodes:
        if node.op == "BatchNormalization":
            momenta[node.name] = node.attrs["momentum"]
            node.attrs["momentum"] = 0.0
    if not momenta:
        return work
    model = FloatExecutor(work, device=device)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x).to(device))
    out = model.to_graph()
    for node in out.nodes:
        if node.name in momenta:
            node.attrs["momentum"] = momenta[node.name]
    return out


def accuracy(graph: Graph, data: Dataset, device: str = "cpu") -> float:
    """Top-1 accuracy of ``graph``'s first output on labelled ``data`` (eval mode)."""
    labels = _labelled(data)
    model = FloatExecutor(graph, device=device)
    logits = model.run(data.x, batch_size=EVAL_BATCH)[graph.outputs[0]]
    return float((logits.argmax(1) == labels).mean())
