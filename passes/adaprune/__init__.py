"""AdaPruner: BN-importance channel pruning to a MAC budget with adaptive weight inheritance.

Pass ``adaprune``. Establishes: the graph's Conv/Gemm layers have fewer channels and its MACs
are at most ``flops`` times the original's (reported exactly); it still verifies, keeps its
inputs, outputs and BatchNormalization nodes, and has been fine-tuned. It needs BN, so it runs
*before* ``canonicalize``; training data comes from the ``data`` option (a data set spec such as
``fashion-mnist:train``) or else from ``ctx.state["train"]`` (a labelled `pqc.data.Dataset`);
its report is left in ``ctx.state["adaprune"]``::

    Pipeline.parse("adaprune(flops=0.5),canonicalize,quantize(wbits=8),lower").run(
        graph, PassContext(calib=x, state={"train": load_dataset("fashion-mnist:train")}))

Steps (algorithms/adapruner.md): channel groups (`channel_groups`), block importance and
bisection on one scalar (`adaprune.budget`), one pruned candidate per weight-inheritance
criterion (`adaprune.criteria`, `adaprune.prune`) scored on a held-out split of the training
data after BN recalibration, the best one fine-tuned (`adaprune.train`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pqc import console
from pqc.data import Dataset, load_training_data, split_train_val
from pqc.errors import DataError, ModelError, PqcError
from pqc.ir import Graph
from pqc.pipeline import PassContext, register_pass

from pqc.passes.adaprune.budget import BudgetRule, block_importance, search_budget
from pqc.passes.adaprune.criteria import CRITERIA, reinitialize, select_channels
from pqc.passes.adaprune.prune import prune_channels
from pqc.passes.rebatch import rebatch
from pqc.passes.adaprune.report import build_report
from pqc.passes.adaprune.train import TrainConfig, accuracy, recalibrate_bn, train_graph
from pqc.passes.channel_groups import ChannelDeps, channel_groups

AUTO = "auto"


@dataclass(frozen=True)
class PruneConfig:
    """What `adaprune` does: the MAC budget, the count rule, the criterion (``auto``: every one in
    ``CRITERIA`` is tried and the best held-out score wins), the held-out and recalibration sample
    counts, uniform-width instead of importance-driven counts, and the fine-tuning recipe."""

    flops: float = 0.5
    rule: BudgetRule = BudgetRule()
    criterion: str = AUTO
    val_samples: int = 1000
    calib_samples: int = 512
    uniform: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.criterion != AUTO and self.criterion not in CRITERIA:
            raise PqcError(f"unknown criterion {self.criterion!r}; use {AUTO} or one of {', '.join(CRITERIA)}")
        if self.val_samples < 1 or self.calib_samples < 1:
            raise PqcError("val_samples and calib_samples must be positive")


@dataclass
class PruneResult:
    """The pruned, fine-tuned graph and the report (`adaprune_report.build_report`)."""

    graph: Graph
    report: dict[str, Any]


def adaprune(graph: Graph, data: Dataset, config: PruneConfig = PruneConfig(), eval_data: Dataset | None = None) -> PruneResult:
    """Prune ``graph`` to ``config.flops`` of its MACs using labelled training ``data``.

    ``data`` is split into a fine-tuning part and ``config.val_samples`` held-out samples that
    score the criteria and the accuracies in the report; ``eval_data`` (e.g. the test split)
    adds accuracies measured on it.
    """
    batched = rebatch(graph)
    if batched is None:
        raise ModelError(f"graph {graph.name!r} has a fixed batch size that its ops depend on; pruning trains it on "
                         "batches (export it with a dynamic batch)")
    graph = batched
    deps = channel_groups(graph)
    importance = block_importance(graph, deps, uniform=config.uniform)
    if not importance:
        raise ModelError(
            f"graph {graph.name!r} has no prunable channel group with BatchNormalization; "
            "adaprune must run before canonicalize, which folds BN away"
        )
    seed, device = config.train.seed, config.train.device
    if config.val_samples >= len(data):
        raise DataError(f"{data.name} holds {len(data)} samples: too few to hold out val_samples={config.val_samples} "
                        "for scoring and still fine-tune (lower val_samples or give more data)")
    tune_data, val = split_train_val(data, config.val_samples, seed)
    if config.calib_samples > len(tune_data):
        raise DataError(f"{data.name}: {config.calib_samples} recalibration samples requested, {len(tune_data)} available")
    calib = tune_data.x[: config.calib_samples]
    budget = search_budget(graph, deps, importance, config.flops, config.rule)
    console.info(f"adaprune: {budget.macs:,} of {budget.original_macs:,} MACs ({budget.ratio:.4f}; budget "
                 f"{budget.budget_macs:,}) at t={budget.t:.6g}")

    def measure(g: Graph) -> dict[str, float]:
        scores = {"val": accuracy(g, val, device)}
        if eval_data is not None:
            scores["eval"] = accuracy(g, eval_data, device)
        return scores

    accuracy_before = measure(graph)
    candidates = list(CRITERIA) if config.criterion == AUTO else [config.criterion]
    chosen, scores, pruned = choose_inheritance(graph, deps, budget.counts, candidates, calib, val, seed, device)
    accuracy_pruned = measure(pruned)
    tuned = train_graph(pruned, tune_data, config.train, desc=f"fine-tune ({chosen})")
    accuracy_tuned = measure(tuned.graph)
    console.info(f"adaprune: chose {chosen}; held-out top-1 {accuracy_before['val']:.4f} before, "
                 f"{accuracy_pruned['val']:.4f} pruned, {accuracy_tuned['val']:.4f} fine-tuned ({tuned.seconds:.1f}s)")
    report = build_report(
        graph, tuned.graph, deps, importance, budget, config, scores, chosen,
        {"before": accuracy_before, "pruned": accuracy_pruned, "fine_tuned": accuracy_tuned},
        tuned.seconds, tuned.history, data_name=data.name, eval_name=eval_data.name if eval_data is not None else None,
    )
    return PruneResult(tuned.graph, report)


def choose_inheritance(
    graph: Graph,
    deps: ChannelDeps,
    counts: dict[int, int],
    candidates: list[str],
    calib: np.ndarray,
    val: Dataset,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[str, dict[str, float], Graph]:
    """The adaptive weight inheritance: per criterion, the pruned network with BN statistics
    recalibrated on ``calib`` and its top-1 on ``val``. Returns the best criterion (the first
    listed on a tie), every score, and the best network."""
    scores: dict[str, float] = {}
    networks: dict[str, Graph] = {}
    for criterion in candidates:
        candidate = prune_channels(graph, deps, select_channels(graph, deps, counts, criterion, seed))
        if criterion == "scratch":
            candidate = reinitialize(candidate, seed)
        networks[criterion] = recalibrate_bn(candidate, calib, device)
        scores[criterion] = accuracy(networks[criterion], val, device)
        console.info(f"adaprune: criterion {criterion:7s} held-out top-1 after BN recalibration {scores[criterion]:.4f}")
    chosen = max(candidates, key=lambda c: scores[c])
    return chosen, scores, networks[chosen]


@register_pass("adaprune")
def adaprune_pass(
    graph: Graph,
    ctx: PassContext,
    *,
    flops: float = PruneConfig.flops,
    data: str = "",
    criterion: str = PruneConfig.criterion,
    epochs: int = TrainConfig.epochs,
    lr: float = TrainConfig.lr,
    batch_size: int = TrainConfig.batch_size,
    round_to: int = BudgetRule.round_to,
    k_min: float = BudgetRule.k_min,
    c_min: int = BudgetRule.c_min,
    uniform: bool = PruneConfig.uniform,
    hflip: bool = TrainConfig.hflip,
    val_samples: int = PruneConfig.val_samples,
    calib_samples: int = PruneConfig.calib_samples,
) -> Graph:
    """AdaPruner channel pruning to ``flops`` of the MACs, then fine-tuning (needs BN: run before canonicalize).

    The options are `PruneConfig`'s, `BudgetRule`'s and `TrainConfig`'s, with their defaults."""
    train = load_training_data(data) if data else ctx.state.get("train")
    if not isinstance(train, Dataset):
        raise DataError(
            "adaprune needs labelled training data: give the pass option data=fashion-mnist:train (or an .npz), "
            "or put a pqc.data.Dataset in PassContext.state['train']"
        )
    config = PruneConfig(
        flops=flops, rule=BudgetRule(k_min=k_min, c_min=c_min, round_to=round_to), criterion=criterion,
        val_samples=val_samples, calib_samples=calib_samples, uniform=uniform,
        train=TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, hflip=hflip, seed=ctx.seed, device=ctx.device),
    )
    result = adaprune(graph, train, config)
    ctx.state["adaprune"] = result.report
    return result.graph
