"""Block reconstruction (BRECQ with RAPQ's exponent relaxation), unit by unit in forward order.

Two phases over the units of `units.find_units` (rapq.md sections 3-6):

1. *Weights*, activations in float: each unit's `WeightQuantizer`s minimize
   ``mean_{batch, positions} sum_channels |f_unit(x_q; W_q) - f_unit(x; W)|^p`` with ``x_q`` the
   unit's input computed by the already reconstructed upstream network and the target taken
   from the float network. The PoT exponent relaxation ``v`` (floor or ceil per channel) trains
   during the first `Schedule.exponent_fraction` of the iterations, regularized by
   ``10 * lam * sum(1 - |2h(v)-1|^beta)``, and is hardened; AdaRound's ``alpha`` then starts at
   the hardened power-of-two scale, its regularizer ``lam * sum(1 - |2h(alpha)-1|^beta)`` on
   after the warm-up with beta decaying 20 -> 2, and is hardened at the end.
2. *Activations*, weights hard: each unit's `ActQuantizer`s train on the same loss with inputs
   from the fully quantized upstream network (Adam, cosine decay), then their exponents are
   read as integers (they already are in the forward pass). A unit's new exponents are kept
   only if they do not raise the network's output error on the calibration set: a factor-2
   step that lowers one unit's loss can clip what later units need (measured on ResNet-8 W4A4:
   -1.2 points of top-1 without this check).

Iteration counts are CPU-sized; learning rates are the published ones scaled by the ratio of
published (20k) to actual iterations (at most `MAX_LR_SCALE`), so that a parameter can move as
far in total (with a few hundred steps at lr 4e-4 an activation exponent could never change). The exponent relaxation
gets 10x the rounding's rate: at the same rate, in 2.5% of the iterations Adam moves ``v`` by
at most 0.5, so only channels with ``frac(log2 s0)`` near 0.5 could ever switch side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from pqc import console
from pqc.executor import FloatExecutor

from pqc.passes.rapq.checkpoint import PHASES, Checkpoint
from pqc.passes.rapq.network import QuantNetwork
from pqc.passes.rapq.quantizers import WeightQuantizer
from pqc.passes.rapq.units import Unit

PUBLISHED_ITERS = 20_000
MAX_LR_SCALE = 40.0
"""Cap of the learning-rate scaling (reached at 500 iterations): with a handful of iterations an
uncapped rate would jump across the whole relaxation at every step."""
EVAL_CHUNK = 64


@dataclass(frozen=True)
class Schedule:
    """Iterations and optimization settings of one reconstruction run (per unit)."""

    iters: int
    act_iters: int
    batch_size: int = 32
    lam: float = 0.01
    warmup: float = 0.2
    exponent_fraction: float = 0.025
    beta_start: float = 20.0
    beta_end: float = 2.0
    lr_weight: float = 1e-3
    lr_exponent: float = 1e-2
    lr_act: float = 4e-4

    def scaled_lr(self, lr: float, iters: int) -> float:
        return lr * min(PUBLISHED_ITERS / max(iters, 1), MAX_LR_SCALE)

    def beta(self, it: int) -> float:
        warm = self.warmup * self.iters
        if it < warm:
            return self.beta_start
        frac = (it - warm) / max(self.iters - warm, 1.0)
        return self.beta_start + (self.beta_end - self.beta_start) * frac

    @property
    def exponent_iters(self) -> int:
        return max(1, round(self.exponent_fraction * self.iters))


@dataclass
class UnitLog:
    """What one unit's reconstruction did (for the report)."""

    name: str
    layers: list[str]
    p: float
    weight_loss: list[float] = field(default_factory=list)  # before, after
    act_loss: list[float] = field(default_factory=list)  # before, after
    act_kept: bool = True  # False: the learned activation exponents raised the network's output error


def lp_loss(out: torch.Tensor, target: torch.Tensor, p: float) -> torch.Tensor:
    """``|out - target|^p`` summed over channels (axis 1), averaged over batch and positions."""
    return (out - target).abs().pow(p).sum(dim=1).mean()


def reconstruct(
    net: QuantNetwork,
    units: list[Unit],
    ps: list[float],
    x: np.ndarray,
    schedule: Schedule,
    *,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: Checkpoint | None = None,
) -> list[UnitLog]:
    """Train ``net``'s quantizers on calibration inputs ``x`` (both phases); returns one log per
    unit. With a ``checkpoint`` the state is saved after every unit, and a resuming checkpoint
    continues where its run stopped (`pqc.passes.rapq.checkpoint`)."""
    net.to(device)
    rng = np.random.default_rng(seed)  # batch sampling: the only randomness
    logs = [UnitLog(u.name, [n.name for n in u.layers], p) for u, p in zip(units, ps)]
    phase, start = checkpoint.restore(net, rng, logs) if checkpoint is not None else (PHASES[0], 0)
    if start:
        console.info(f"rapq: resuming the {phase} phase at unit {start + 1} of {len(units)}")
    float_exec = FloatExecutor(net.graph, device=device)
    targets = float_exec.run(x, batch_size=EVAL_CHUNK, capture=[u.output for u in units])
    targets = {k: torch.from_numpy(v).to(device) for k, v in targets.items()}
    x_t = torch.from_numpy(x).to(device)

    def save(phase: str, next_unit: int) -> None:
        if checkpoint is not None:
            checkpoint.save(phase, next_unit, net, rng, logs)

    if phase == PHASES[0]:
        h = _replay(net, units[:start], x_t, acts=False)  # the saved units' output again
        for k in range(start, len(units)):
            unit, p, log = units[k], ps[k], logs[k]
            quantizers = [q for n in unit.layers if isinstance(q := net.weight(n), WeightQuantizer)]
            if quantizers:
                log.weight_loss = _weight_phase(net, unit, quantizers, h, targets[unit.output], p, schedule, rng)
            save(*((PHASES[0], k + 1) if k + 1 < len(units) else (PHASES[1], 0)))
            h = _unit_output(net, unit, h, acts=False)
        phase, start = PHASES[1], 0

    h = _replay(net, units[:start], net.quantize_input(x_t), acts=True) if start < len(units) else None
    logits, p_out = targets[units[-1].output], ps[-1]
    for k in range(start, len(units)):
        unit, p, log = units[k], ps[k], logs[k]
        act_qs = net.learnable_acts(unit.nodes)
        if act_qs:
            initial = [q.t.item() for q in act_qs]
            before = _network_loss(net, units[k:], h, logits, p_out)
            log.act_loss = _act_phase(net, unit, act_qs, h, targets[unit.output], p, schedule, rng)
            if _network_loss(net, units[k:], h, logits, p_out) > before:
                with torch.no_grad():
                    for q, t in zip(act_qs, initial):
                        q.t.fill_(t)
                log.act_loss[1], log.act_kept = log.act_loss[0], False
        save(PHASES[1], k + 1)
        h = _unit_output(net, unit, h, acts=True)
    net.requires_grad_(False)
    return logs


def _replay(net: QuantNetwork, units: list[Unit], h: torch.Tensor, *, acts: bool) -> torch.Tensor:
    """``h`` run through ``units`` as they stand (a resumed run's input to its next unit)."""
    for unit in units:
        h = _unit_output(net, unit, h, acts=acts)
    return h


def _unit_output(net: QuantNetwork, unit: Unit, h: torch.Tensor, *, acts: bool) -> torch.Tensor:
    with torch.no_grad():
        parts = [net.run(unit.nodes, {unit.input: h[i:i + EVAL_CHUNK]}, weights=True, acts=acts)[unit.output]
                 for i in range(0, len(h), EVAL_CHUNK)]
    return torch.cat(parts)


def _network_loss(net: QuantNetwork, units: list[Unit], h: torch.Tensor, target: torch.Tensor, p: float) -> float:
    """The quantized network's output error on the calibration set, from ``units[0]``'s input on."""
    return float(lp_loss(_replay(net, units, h, acts=True), target, p))


def _full_loss(net: QuantNetwork, unit: Unit, h: torch.Tensor, target: torch.Tensor, p: float, acts: bool) -> float:
    return float(lp_loss(_unit_output(net, unit, h, acts=acts), target, p))


def _weight_phase(net: QuantNetwork, unit: Unit, quantizers: list[WeightQuantizer], h: torch.Tensor,
                  target: torch.Tensor, p: float, s: Schedule, rng: np.random.Generator) -> list[float]:
    """Reconstruct the unit's weights; returns the loss with the baseline (lp) weights and after."""
    with net.baseline_weights(unit.layers):
        before = _full_loss(net, unit, h, target, p, acts=False)
    lr = s.scaled_lr(s.lr_weight, s.iters)
    params = [{"params": [q.alpha for q in quantizers], "lr": lr}]
    if any(q.pot for q in quantizers):
        params.append({"params": [q.v for q in quantizers if q.pot], "lr": s.scaled_lr(s.lr_exponent, s.iters)})
    opt = torch.optim.Adam(params)
    state = {"loss": math.nan}
    warm = s.warmup * s.iters
    bar = console.progress(range(s.iters), f"rapq weights {unit.name}", status=lambda: f"loss {state['loss']:.4g}")
    for it in bar:
        idx = torch.from_numpy(rng.choice(len(h), min(s.batch_size, len(h)), replace=False)).to(h.device)
        out = net.run(unit.nodes, {unit.input: h[idx]}, weights=True, acts=False)[unit.output]
        rec = lp_loss(out, target[idx], p)
        beta = s.beta(it)
        loss = rec
        if it < s.exponent_iters:
            loss = loss + 10 * s.lam * sum(q.exponent_penalty(beta) for q in quantizers)
        if it >= warm:
            loss = loss + s.lam * sum(q.rounding_penalty(beta) for q in quantizers)
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["loss"] = rec.item()
        if it + 1 == s.exponent_iters:
            for q in quantizers:
                q.harden_exponent()
    for q in quantizers:
        q.harden_exponent()
        q.harden_rounding()
    return [before, _full_loss(net, unit, h, target, p, acts=False)]


def _act_phase(net: QuantNetwork, unit: Unit, quantizers: list, h: torch.Tensor, target: torch.Tensor,
               p: float, s: Schedule, rng: np.random.Generator) -> list[float]:
    """Learn the unit's activation scales; returns the unit's loss before and after."""
    before = _full_loss(net, unit, h, target, p, acts=True)
    opt = torch.optim.Adam([q.t for q in quantizers], lr=s.scaled_lr(s.lr_act, s.act_iters))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(s.act_iters, 1))
    state = {"loss": math.nan}
    bar = console.progress(range(s.act_iters), f"rapq activations {unit.name}",
                           status=lambda: f"loss {state['loss']:.4g}")
    for _ in bar:
        idx = torch.from_numpy(rng.choice(len(h), min(s.batch_size, len(h)), replace=False)).to(h.device)
        out = net.run(unit.nodes, {unit.input: h[idx]}, weights=True, acts=True)[unit.output]
        loss = lp_loss(out, target[idx], p)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        state["loss"] = loss.item()
    return [before, _full_loss(net, unit, h, target, p, acts=True)]
