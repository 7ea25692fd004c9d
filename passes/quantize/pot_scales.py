"""Quantization grids and power-of-two scale selection (RAPQ section 2 and the naive baseline).

A `Grid` is the set of integer levels a quantized tensor may take; the real value is
``level * 2**exp``. Scale selection works per row of a 2-D array (a weight output channel, or
a single row of activation samples):

* `lp_scales`: shrink the row's range by ``1 - 0.01*i``, ``i = 0..79``, and keep the uniform
  scale ``clip / grid.top`` minimizing ``mean |x - Q(x)|^2.4`` (the first, i.e. widest, clip
  among equals);
* `minmax_scales`: the range itself over ``grid.top`` (naive);
* `pot_exponents`: the nearest power of two of a scale, ``round(log2 s)`` (naive);
* `lp_pot_exponents`: of the two powers of two around the Lp-optimal scale, the one with the
  smaller Lp(2.4) error on the row (``lp``): rounding log2 alone may shrink the range by up to
  1/sqrt(2) and clip the largest weights of a channel, which costs far more than the finer step
  gains (measured on ResNet-8's stem at W8: 18.9 dB SQNR with rounding).
* `method_exponents`: the per-method entry point the quantizer calls.

The range of a row is ``max |x|`` on a signed grid and ``max(x, 0)`` on an unsigned one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LP_NORM = 2.4
SHRINK_STEPS = 80
SHRINK_STEP = 0.01
POT_MAX_SHIFT = 6
"""Largest ``k`` of a ``pot`` weight ``+-2^k``: lowering stores integer weights as int8, so
``|q| <= 64``; levels below 2^-6 of a channel's top level would mostly round to zero anyway."""


@dataclass(frozen=True, eq=False)
class Grid:
    """Sorted integer ``levels`` a quantized value may take."""

    levels: np.ndarray

    @property
    def top(self) -> int:
        """The largest positive level: the one the clipping range maps to."""
        return int(self.levels[-1])

    @property
    def signed(self) -> bool:
        return bool(self.levels[0] < 0)

    def round(self, units: np.ndarray) -> np.ndarray:
        """Nearest level to each value of ``units`` (values in multiples of the scale); ties
        go to the larger level. Values beyond the grid saturate.

        On a grid of consecutive integers (every ``int_grid``) that is ``floor(u + 0.5)``,
        clipped: the Lp search rounds each weight 80 times, and this is several times faster
        than a search among the midpoints. ``u + 0.5`` can round up to the next integer when
        ``u`` is just below a midpoint, so those are stepped back (``r - 0.5`` is exact)."""
        lo, hi = int(self.levels[0]), int(self.levels[-1])
        if hi - lo + 1 != len(self.levels):
            mids = (self.levels[1:] + self.levels[:-1]) / 2.0
            return self.levels[np.searchsorted(mids, units, side="right")]
        r = np.add(units, 0.5)
        np.floor(r, out=r)
        r -= (r - 0.5) > units
        return np.clip(r, lo, hi, out=r).astype(np.int64)


def int_grid(bits: int, signed: bool, symmetric: bool = False) -> Grid:
    """Integers of a ``bits``-bit type; ``symmetric`` drops the most negative one (weights:
    ``q in [-(2^(b-1)-1), 2^(b-1)-1]``)."""
    if not signed:
        return Grid(np.arange(0, 1 << bits, dtype=np.int64))
    low = -(1 << (bits - 1)) + (1 if symmetric else 0)
    return Grid(np.arange(low, 1 << (bits - 1), dtype=np.int64))


def pot_grid(bits: int) -> Grid:
    """0 and ``+-2^k``: a sign bit and a (bits-1)-bit code, code 0 meaning zero and code j
    meaning ``2^(j-1)``, so ``k < 2^(bits-1) - 1`` (ternary at 2 bits), capped at `POT_MAX_SHIFT`."""
    powers = 1 << np.arange(min((1 << (bits - 1)) - 1, POT_MAX_SHIFT + 1), dtype=np.int64)
    return Grid(np.concatenate([-powers[::-1], [0], powers]))


def row_ranges(rows: np.ndarray, grid: Grid) -> np.ndarray:
    """The clipping range of each row before shrinking."""
    top = rows.max(axis=1)
    return np.maximum(top, -rows.min(axis=1)) if grid.signed else np.maximum(top, 0.0)


def minmax_scales(rows: np.ndarray, grid: Grid, ranges: np.ndarray | None = None) -> np.ndarray:
    """Per row, the scale mapping its full range (default: `row_ranges`) to ``grid.top``."""
    ranges = row_ranges(np.asarray(rows, np.float64), grid) if ranges is None else ranges
    return np.asarray(ranges, np.float64) / grid.top


def lp_scales(rows: np.ndarray, grid: Grid, ranges: np.ndarray | None = None) -> np.ndarray:
    """Per row, the uniform scale of the shrink factor with the least Lp(2.4) error.

    ``rows`` is ``[C, K]``; ``ranges`` (default: `row_ranges`) lets a caller search over a
    sample of a tensor while keeping the range of the full tensor. A row with range 0 gets 0.
    """
    rows = np.asarray(rows, np.float64)
    ranges = row_ranges(rows, grid) if ranges is None else np.asarray(ranges, np.float64)
    best_err = np.full(rows.shape[0], np.inf)
    best = np.zeros(rows.shape[0])
    for i in range(SHRINK_STEPS):
        scale = ranges * (1.0 - SHRINK_STEP * i) / grid.top
        safe = np.where(scale > 0, scale, 1.0)[:, None]
        err = np.mean(np.abs(rows - grid.round(rows / safe) * safe) ** LP_NORM, axis=1)
        better = (err < best_err) & (scale > 0)
        best_err, best = np.where(better, err, best_err), np.where(better, scale, best)
    return best


def pot_exponents(scales: np.ndarray, fallback: int = 0) -> np.ndarray:
    """``round(log2 s)`` per scale (int64); a zero scale (an all-zero row) gets ``fallback``."""
    scales = np.asarray(scales, np.float64)
    positive = scales > 0
    exps = np.full(scales.shape, fallback, dtype=np.int64)
    exps[positive] = np.round(np.log2(scales[positive])).astype(np.int64)
    return exps


def lp_errors(rows: np.ndarray, exps: np.ndarray, grid: Grid) -> np.ndarray:
    """Per row, ``mean |x - Q(x)|^2.4`` with power-of-two steps ``2**exps``."""
    step = np.exp2(np.asarray(exps, np.float64))[:, None]
    return np.mean(np.abs(rows - grid.round(rows / step) * step) ** LP_NORM, axis=1)


def lp_pot_exponents(rows: np.ndarray, grid: Grid, ranges: np.ndarray | None = None, fallback: int = 0) -> np.ndarray:
    """Per row, floor or ceil of log2 of the `lp_scales` scale, whichever has the smaller Lp
    error (ties: ceil, the one that clips less); rows of range 0 get ``fallback``."""
    rows = np.asarray(rows, np.float64)
    scales = lp_scales(rows, grid, ranges)
    positive = scales > 0
    exps = np.full(scales.shape, fallback, dtype=np.int64)
    if positive.any():
        low = np.floor(np.log2(scales[positive])).astype(np.int64)
        sub = rows[positive]
        exps[positive] = np.where(lp_errors(sub, low, grid) < lp_errors(sub, low + 1, grid), low, low + 1)
    return exps


def method_exponents(method: str, rows: np.ndarray, grid: Grid, ranges: np.ndarray | None = None) -> np.ndarray:
    """Per-row PoT exponents by ``method`` (``lp`` or ``naive``). An all-zero row (a pruned
    channel) takes the smallest exponent of the other rows, so it never widens anything."""
    rows = np.asarray(rows, np.float64)
    scales = minmax_scales(rows, grid, ranges)
    nonzero = scales > 0
    if method == "naive":
        fallback = int(pot_exponents(scales[nonzero]).min()) if nonzero.any() else 0
        return pot_exponents(scales, fallback)
    exps = lp_pot_exponents(rows, grid, ranges)
    return np.where(nonzero, exps, exps[nonzero].min() if nonzero.any() else 0)


def quantize_rows(rows: np.ndarray, exps: np.ndarray, grid: Grid) -> np.ndarray:
    """Integer levels of ``rows`` ``[C, K]`` on ``grid`` with per-row exponents (int32)."""
    step = np.exp2(np.asarray(exps, np.float64))[:, None]
    return grid.round(np.asarray(rows, np.float64) / step).astype(np.int32)
