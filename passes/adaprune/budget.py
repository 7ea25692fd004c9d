"""Budget search: how many channels each group keeps so that the pruned MACs meet a budget.

AdaPruner's rule (algorithms/adapruner.md, steps 2-4): a block's importance ``I_b`` is the mean
|gamma| over the BatchNormalization layers of its channels; one global scalar ``t`` sets every
keep ratio ``k_b = clip(t * I_b / max I, k_min, 1)`` and channel count
``max(c_min, round(k_b * c_b))`` (optionally a multiple of ``round_to``). MACs are
non-decreasing in ``t``, so bisection finds the largest ``t`` whose MACs fit the budget.

Groups without a BatchNormalization have no importance and keep all their channels (for the
reference models: VGG's hidden fully connected layer). ``uniform=True`` gives every scored group
the same importance: uniform-width pruning, the baseline AdaPruner is compared with.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pqc.errors import PqcError
from pqc.ir import Graph
from pqc.summary import graph_batch, node_macs

from pqc.passes.channel_groups import ChannelDeps, is_depthwise

BISECTION_STEPS = 60


def block_importance(graph: Graph, deps: ChannelDeps, uniform: bool = False) -> dict[int, float]:
    """Mean |gamma| of each prunable group that has BatchNormalization layers (1.0 each when ``uniform``)."""
    importance: dict[int, float] = {}
    for group in deps.prunable():
        gammas = [
            np.abs(graph.const(graph.node(bn).inputs[1])[offset:offset + group.size]) for bn, offset in group.bns
        ]
        if gammas:
            importance[group.id] = 1.0 if uniform else float(np.mean(np.concatenate(gammas)))
    return importance


@dataclass(frozen=True)
class BudgetRule:
    """The knobs of the count rule: floors on the keep ratio and the channel count, and rounding."""

    k_min: float = 0.1
    c_min: int = 2
    round_to: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.k_min <= 1.0:
            raise PqcError(f"k_min must be in (0, 1], got {self.k_min}")
        if self.c_min < 1 or self.round_to < 1:
            raise PqcError(f"c_min and round_to must be >= 1, got {self.c_min} and {self.round_to}")

    def counts(self, deps: ChannelDeps, importance: dict[int, float], t: float) -> dict[int, int]:
        """Channels kept per scored group at scalar ``t``."""
        top = max(importance.values(), default=0.0)
        counts = {}
        for gid, value in importance.items():
            size = deps.groups[gid].size
            ratio = min(max(t * (value / top if top > 0 else 1.0), self.k_min), 1.0)
            count = int(round(ratio * size))
            if self.round_to > 1:
                count = self.round_to * max(1, int(round(count / self.round_to)))
            counts[gid] = min(size, max(self.c_min, count))
        return counts


def pruned_macs(graph: Graph, deps: ChannelDeps, counts: dict[int, int]) -> int:
    """MACs per sample of ``graph`` pruned to ``counts`` channels per group, without building it.

    Equals `pqc.summary.summarize` of the physically pruned graph (a test holds them together).
    """
    channels = deps.channels(counts)
    batch = graph_batch(graph)
    total = 0
    for node in graph.nodes:
        if node.op == "Conv":
            out = graph.values[node.outputs[0]].shape
            weight = graph.values[node.inputs[1]].shape
            per_out = weight[1] if node.attrs["group"] != 1 or is_depthwise(graph, node) else channels[node.inputs[0]]
            total += out[0] * channels[node.outputs[0]] * out[2] * out[3] * per_out * weight[2] * weight[3] // batch
        elif node.op == "Gemm":
            rows = graph.values[node.outputs[0]].shape[0]
            total += rows * channels[node.outputs[0]] * channels[node.inputs[0]] // batch
        else:
            total += node_macs(graph, node)
    return int(total)


@dataclass(frozen=True)
class BudgetResult:
    """The chosen scalar, its channel counts and MACs, and the original MACs."""

    t: float
    counts: dict[int, int]
    macs: int
    original_macs: int
    budget_macs: int

    @property
    def ratio(self) -> float:
        return self.macs / self.original_macs


def search_budget(
    graph: Graph, deps: ChannelDeps, importance: dict[int, float], flops: float, rule: BudgetRule = BudgetRule()
) -> BudgetResult:
    """The largest ``t`` (to bisection precision) whose pruned MACs are at most ``flops`` times the original."""
    if not 0.0 < flops <= 1.0:
        raise PqcError(f"the MAC budget must be a fraction in (0, 1], got {flops}")
    original = pruned_macs(graph, deps, {})
    budget = int(np.floor(flops * original))

    def macs_at(t: float) -> int:
        return pruned_macs(graph, deps, rule.counts(deps, importance, t))

    positive = [v for v in importance.values() if v > 0]
    lo, hi = 0.0, (max(positive) / min(positive) if positive else 1.0)
    if macs_at(lo) > budget:
        raise PqcError(
            f"a MAC budget of {flops:g} x {original:,} = {budget:,} is out of reach: the smallest network the "
            f"rule allows (k_min={rule.k_min}, c_min={rule.c_min}, round_to={rule.round_to}) has "
            f"{macs_at(lo):,} MACs ({macs_at(lo) / original:.3f} of the original)"
        )
    if macs_at(hi) <= budget:
        lo = hi
    else:
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if macs_at(mid) <= budget else (lo, mid)
    counts = rule.counts(deps, importance, lo)
    return BudgetResult(lo, counts, pruned_macs(graph, deps, counts), original, budget)
