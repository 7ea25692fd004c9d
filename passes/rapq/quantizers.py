"""The torch fake-quantizers RAPQ trains: weights (PoT exponent relaxation + AdaRound) and
activations (per-tensor exponent learned on log2 of the scale).

Both follow the integer program's rounding rules once hard, so that what is trained is what
runs (`pqc.passes.lower`, `pqc.intmath`): activations round half up
(``floor(x / 2^e + 0.5)``, the requantizer's `rshift_round`), compile-time constants round half
away from zero. ``pot=False`` gives the ``uniform`` reference: the same training with float scales.
"""
from __future__ import annotations

import numpy as np
import torch

from pqc.passes.quantize.pot_scales import int_grid, lp_scales

ZETA, GAMMA = 1.1, -0.1
"""AdaRound's rectified sigmoid stretch: ``h(v) = clamp(sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)``."""


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def inverse_rectified_sigmoid(h: np.ndarray) -> np.ndarray:
    """The ``v`` with ``rectified_sigmoid(v) = h`` for ``h`` in [0, 1) (h = 0 maps inside the clamp)."""
    p = (np.clip(h, 1e-4, 1 - 1e-4) - GAMMA) / (ZETA - GAMMA)
    return np.log(p / (1.0 - p))


def binarization_penalty(h: torch.Tensor, beta: float) -> torch.Tensor:
    """``sum(1 - |2h - 1|^beta)``: zero once every ``h`` is 0 or 1."""
    return (1.0 - (2.0 * h - 1.0).abs().pow(beta)).sum()


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 0.5)`` with a straight-through gradient (the run-time requantizer's rounding)."""
    return x + (torch.floor(x + 0.5) - x).detach()


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Compile-time rounding (`intmath.round_half_away`), no gradient."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


class WeightQuantizer(torch.nn.Module):
    """One layer's weight, quantized per output channel with scale ``s``.

    PoT: the exponent is ``k0 + h(v)`` with ``k0 = floor(log2 s0)``, ``s0`` the Lp(2.4) scale and
    ``h(v0) = frac(log2 s0)``. While it is relaxed, the weight is ``(1 - h) * Q_floor + h * Q_ceil``
    with ``Q_floor``, ``Q_ceil`` the weight rounded to nearest at the scales ``2^k0`` and
    ``2^(k0+1)``; `harden_exponent` then fixes ``h(v)`` to ``v >= 0``. Mixing the two candidate
    weights rather than relaxing the scale itself (``2^(k0 + h)``, as rapq.md writes it) is what
    makes the learned choice the block-level trade-off between finer steps and clipping: for a
    quadratic loss in ``h`` the minimum lies beyond 0.5 exactly when ceil's loss is the smaller,
    while a relaxed scale settles where clipping stops, which says nothing about either end (and
    with AdaRound's soft rounding every scale reproduces the weights up to clipping).
    Uniform: ``s = s0`` from the start.

    With the exponent hard the weight is AdaRound's ``clamp(floor(w / s) + h(alpha)) * s``,
    ``alpha`` starting at ``frac(w / s)``; `harden_rounding` makes the rounding ``alpha >= 0``.
    A channel whose Lp scale is 0 (all zero) takes the smallest scale of the layer; weights that
    are exactly zero (pruned) stay zero, since they cost no adds in the shift-add kernels.
    """

    def __init__(self, weight: np.ndarray, bits: int, pot: bool) -> None:
        super().__init__()
        grid = int_grid(bits, signed=True, symmetric=True)
        self.qmin, self.qmax, self.pot = int(grid.levels[0]), int(grid.top), pot
        rows = weight.reshape(weight.shape[0], -1).astype(np.float64)
        s0 = lp_scales(rows, grid)
        positive = s0 > 0
        log_s = np.log2(np.where(positive, s0, s0[positive].min() if positive.any() else 1.0))
        self.register_buffer("w", torch.from_numpy(weight.astype(np.float32)))
        self.register_buffer("nonzero", torch.from_numpy((weight != 0).astype(np.float32)))
        self.register_buffer("base", torch.from_numpy(np.floor(log_s) if pot else log_s).float())
        self.v = torch.nn.Parameter(torch.from_numpy(inverse_rectified_sigmoid(log_s - np.floor(log_s))).float())
        self.v.requires_grad_(pot)
        self.alpha = torch.nn.Parameter(torch.zeros_like(self.w))
        self.exponent_hard = not pot
        self.rounding_hard = False
        self._init_rounding()

    def _shape(self) -> tuple[int, ...]:
        return (-1,) + (1,) * (self.w.dim() - 1)

    def _init_rounding(self) -> None:
        """``h(alpha) = frac(w / s)`` at the current scale (AdaRound's start: the float weight)."""
        with torch.no_grad():
            units = (self.w.double() / self.scale().double().reshape(self._shape())).cpu().numpy()
            self.alpha.copy_(torch.from_numpy(inverse_rectified_sigmoid(units - np.floor(units))))

    def h_v(self) -> torch.Tensor:
        if not self.pot:
            return torch.zeros_like(self.v)
        return (self.v >= 0).to(self.v.dtype) if self.exponent_hard else rectified_sigmoid(self.v)

    def scale(self) -> torch.Tensor:
        """Per-channel scales (exact powers of two once the exponent is hard)."""
        return torch.exp2(self.base.to(self.v.dtype) + self.h_v())

    def rounding(self) -> torch.Tensor:
        return (self.alpha >= 0).to(self.alpha.dtype) if self.rounding_hard else rectified_sigmoid(self.alpha)

    def forward(self) -> torch.Tensor:
        s = self.scale().reshape(self._shape())
        w = self.w.to(s.dtype)
        keep = self.nonzero.to(s.dtype)
        if self.exponent_hard:
            q = torch.clamp(torch.floor(w / s).detach() + self.rounding(), self.qmin, self.qmax)
            return q * keep * s
        h = rectified_sigmoid(self.v).to(s.dtype).reshape(self._shape())
        return ((1 - h) * self._nearest(w, 0) + h * self._nearest(w, 1)) * keep

    def _nearest(self, w: torch.Tensor, offset: int) -> torch.Tensor:
        """``w`` rounded to nearest on the grid of scale ``2^(k0 + offset)`` (a constant)."""
        s = torch.exp2(self.base.to(w.dtype) + offset).reshape(self._shape())
        return (torch.clamp(torch.floor(w / s + 0.5), self.qmin, self.qmax) * s).detach()

    def exponent_penalty(self, beta: float) -> torch.Tensor:
        if self.exponent_hard:
            return torch.zeros((), device=self.v.device)
        return binarization_penalty(rectified_sigmoid(self.v), beta)

    def rounding_penalty(self, beta: float) -> torch.Tensor:
        if not self.exponent_hard:
            return torch.zeros((), device=self.alpha.device)
        return binarization_penalty(rectified_sigmoid(self.alpha), beta)

    def harden_exponent(self) -> None:
        """Fix the exponent to floor or ceil and start AdaRound at that (power-of-two) scale."""
        if not self.exponent_hard:
            self.exponent_hard = True
            self._init_rounding()
        self.v.requires_grad_(False)

    def harden_rounding(self) -> None:
        self.rounding_hard = True
        self.alpha.requires_grad_(False)

    def exponents(self) -> np.ndarray:
        """Integer per-channel exponents (PoT, exponent hardened)."""
        if not (self.pot and self.exponent_hard):
            raise RuntimeError("weight exponents are integers only for a PoT quantizer after harden_exponent")
        return (self.base.numpy().astype(np.int64) + (self.v.detach().cpu().numpy() >= 0)).astype(np.int32)

    def integers(self) -> np.ndarray:
        """The integer weights (hardened rounding)."""
        with torch.no_grad():
            s = self.scale().reshape(self._shape()).to(torch.float64)
            return torch.round(self.forward().to(torch.float64) / s).cpu().numpy().astype(np.int32)

    def error_stats(self) -> dict[str, float]:
        """Of the current weights: the fraction clipped, and the squared rounding and clipping
        errors summed over the weights they concern, divided by the weight count."""
        with torch.no_grad():
            w = self.w.double()
            units = w / self.scale().double().reshape(self._shape())
            clipped = (units > self.qmax + 0.5) | (units < self.qmin - 0.5)
            err = (w - self().double()) ** 2
            n = max(w.numel(), 1)
            return {"clip_fraction": float(clipped.sum()) / n,
                    "rounding_mse": float(err[~clipped].sum()) / n, "clipping_mse": float(err[clipped].sum()) / n}

    def floor_chosen(self) -> np.ndarray:
        """Per channel, whether the finer exponent ``floor(log2 s0)`` won."""
        return self.h_v().detach().cpu().numpy() == 0


class FixedWeight(torch.nn.Module):
    """A layer kept as the baseline quantized it (the first layer): integers ``q`` times ``2^exps``."""

    def __init__(self, q: np.ndarray, exps: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("q", torch.from_numpy(q.astype(np.float32)))
        self.register_buffer("exps", torch.from_numpy(np.asarray(exps, np.float32)))

    def scale(self) -> torch.Tensor:
        return torch.exp2(self.exps)

    def forward(self) -> torch.Tensor:
        return self.q * self.scale().reshape((-1,) + (1,) * (self.q.dim() - 1))


class ActQuantizer(torch.nn.Module):
    """Per-tensor activation format: ``clamp(floor(x / s + 0.5), qmin, qmax) * s``.

    PoT: ``s = 2^round(t)`` with ``t`` (log2 of the scale) learned through a straight-through
    round, so the forward pass always uses an integer exponent; uniform: ``s = 2^t``. The
    gradient on ``t`` is the LSQ one (through ``s``, straight through the rounding of ``x / s``).
    """

    def __init__(self, bits: int, signed: bool, log2_scale: float, pot: bool) -> None:
        super().__init__()
        grid = int_grid(bits, signed)
        self.qmin, self.qmax, self.pot = int(grid.levels[0]), int(grid.top), pot
        self.t = torch.nn.Parameter(torch.tensor(float(log2_scale)))

    def log2_scale(self) -> torch.Tensor:
        return round_half_up(self.t) if self.pot else self.t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.exp2(self.log2_scale().to(x.dtype))
        return torch.clamp(round_half_up(x / s), self.qmin, self.qmax) * s

    def exponent(self) -> int:
        """The integer exponent (PoT)."""
        if not self.pot:
            raise RuntimeError("a uniform activation quantizer has no integer exponent")
        return int(np.floor(float(self.t.detach()) + 0.5))
