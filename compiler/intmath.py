"""Integer arithmetic shared by lowering, range analysis, the simulator and the C emitter.

Everything here is exact integer math (numpy int64 arrays or Python ints) with the rounding
conventions of DESIGN.md "Integer semantics":

* run time: `rshift_round` rounds half up (``(a + 2^(s-1)) >> s`` with an arithmetic shift), the
  only rounding the generated C performs;
* compile time (biases, LUT entries, multipliers, input quantization): `round_half_away`, which
  is symmetric around zero, so quantizing ``-b`` gives exactly ``-round(b)``.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .ir import Value

IntLike = Union[int, np.ndarray]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def rshift_round(a: IntLike, s: IntLike) -> IntLike:
    """``(a + (1 << (s-1))) >> s`` for ``s > 0`` (round half up), ``a << -s`` for ``s <= 0``.

    ``s`` may be an array broadcast against ``a`` (per-channel shifts: reshape it to the channel
    axis first, see `channel_vector`). Python ints give exact big-int results; arrays are int64.
    """
    if isinstance(a, (int, np.integer)) and isinstance(s, (int, np.integer)):
        a, s = int(a), int(s)
        return (a + (1 << (s - 1))) >> s if s > 0 else a << -s
    a = np.asarray(a, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    shape = np.broadcast_shapes(a.shape, s.shape)
    if shape != a.shape:
        a = np.broadcast_to(a, shape)
    left, right = np.maximum(-s, 0), np.maximum(s, 0)
    out = np.left_shift(a, left) if left.any() else a
    if right.any():
        out = out + np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
        out >>= right
    return out.copy() if out is a else out  # never alias the caller's array


def format_range(bits: int, signed: bool) -> tuple[int, int]:
    """The integers a ``bits``-bit value can hold, within int32 (the widest activation dtype)."""
    if signed:
        return max(-(1 << (bits - 1)), INT32_MIN), min((1 << (bits - 1)) - 1, INT32_MAX)
    return 0, min((1 << bits) - 1, INT32_MAX)


def value_range(value: "Value") -> tuple[int, int]:
    """The integers an integer-IR activation holds: `format_range` of its ``meta`` format."""
    return format_range(int(value.meta["bits"]), bool(value.meta["signed"]))


def clamp(a: IntLike, lo: int, hi: int) -> IntLike:
    """``min(max(a, lo), hi)`` for ints and arrays alike."""
    if isinstance(a, (int, np.integer)):
        return min(max(int(a), lo), hi)
    return np.clip(a, lo, hi)


def requantize(acc: np.ndarray, shift: IntLike, lo: int, hi: int, axis: int = 1) -> np.ndarray:
    """``clamp(rshift_round(acc, shift[c]), lo, hi)`` with per-channel shifts on ``axis``."""
    out = rshift_round(acc, channel_vector(shift, acc.ndim, axis))
    return np.clip(out, lo, hi, out=out)


def channel_vector(v: IntLike, ndim: int, axis: int = 1) -> np.ndarray:
    """A scalar or per-channel vector shaped to broadcast along ``axis`` of an ``ndim`` array."""
    v = np.asarray(v, dtype=np.int64)
    if v.ndim == 0 or ndim <= axis:
        return v
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def round_half_away(x: float | np.ndarray) -> IntLike:
    """Round to the nearest integer, ties away from zero (compile-time float -> int)."""
    # floor(|x| + 0.5) would round 0.49999999999999994 up: compare the exact fraction instead
    if np.ndim(x) == 0:
        v = abs(float(x))
        r = math.floor(v) + (v - math.floor(v) >= 0.5)
        return -r if float(x) < 0 else r
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    r = np.floor(a) + (a - np.floor(a) >= 0.5)
    return (np.sign(x) * r).astype(np.int64)


def round_half_up(x: float) -> int:
    """``floor(x + 1/2)``: the real-valued rounding `rshift_round` implements on integers."""
    f = math.floor(x)
    return f + (x - f >= 0.5)


# ------------------------------------------------------------------ canonical signed digits
def naf(w: IntLike, width: int | None = None) -> np.ndarray:
    """Non-adjacent form of ``w``: digits in {-1, 0, 1}, least significant first, on the last axis.

    ``w == sum(d[..., k] << k)``, no two adjacent digits are nonzero, and the count of nonzero
    digits is the minimum over all signed-digit representations. Vectorized: an array of shape S
    gives digits of shape ``S + (width,)``; ``width`` defaults to the longest representation.
    """
    w = np.asarray(w, dtype=np.int64)
    needed = int(np.abs(w).max(initial=0)).bit_length() + 1
    width = needed if width is None else width
    digits = np.zeros(w.shape + (width,), dtype=np.int8)
    rest = w.copy()
    for k in range(width):
        odd = (rest & 1).astype(bool)
        d = np.where(odd, 2 - np.mod(rest, 4), 0)
        digits[..., k] = d
        rest = (rest - d) >> 1
    if np.any(rest != 0):
        raise ValueError(f"width {width} is too small for the NAF of these values")
    return digits


def naf_count(w: IntLike) -> np.ndarray:
    """Nonzero NAF digits of each element: the adds a constant multiplication costs."""
    return np.count_nonzero(naf(w), axis=-1)


def naf_magnitude(w: IntLike) -> np.ndarray:
    """``sum_k |d_k| 2^k`` per element: the largest partial sum a shift-add product of ``w``
    can build in any order, as a multiple of the input; range analysis bounds with it."""
    d = naf(w).astype(np.int64)
    return np.abs(d) @ (np.int64(1) << np.arange(d.shape[-1], dtype=np.int64))


# ------------------------------------------------------------------ reciprocals
def reciprocal(d: int, m_max: int = (1 << 16) - 1) -> tuple[int, int]:
    """``(m, k)`` with ``m / 2^k`` the best approximation of ``1 / d`` using ``1 <= m <= m_max``.

    Every ``k`` for which ``m = round(2^k / d)`` fits is tried; the winner has the smallest
    relative error ``|m d - 2^k| / 2^k`` (at most ``1 / (2 m)``), ties broken by fewer nonzero
    NAF digits of ``m`` (fewer shift-adds) then smaller ``k``. A power-of-two ``d`` gives the
    exact ``(1, log2 d)``. ``m_max`` is chosen by the caller so that ``sum * m`` fits int32.
    """
    if d < 1 or m_max < 1:
        raise ValueError(f"reciprocal needs d >= 1 and m_max >= 1, got d={d}, m_max={m_max}")
    best: tuple[tuple[Fraction, int, int], int, int] | None = None
    k = 0
    while True:
        m = ((1 << k) + d // 2) // d  # round half up, exact in ints
        if m > m_max:
            break
        if m >= 1:
            key = (Fraction(abs(m * d - (1 << k)), 1 << k), int(naf_count(m)), k)
            if best is None or key < best[0]:
                best = (key, m, k)
        k += 1
    assert best is not None
    return best[1], best[2]

