"""intmath against independent references: Python big ints, exact fractions, brute force."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqc.intmath import (
    naf,
    naf_count,
    naf_magnitude,
    reciprocal,
    requantize,
    round_half_away,
    rshift_round,
)


def ref_rshift_round(a: int, s: int) -> int:
    """floor(a / 2^s + 1/2) in exact rational arithmetic (for s <= 0 that is a * 2^-s)."""
    return math.floor(Fraction(a, 1) / Fraction(2) ** s + Fraction(1, 2))


@given(st.integers(-(1 << 40), 1 << 40), st.integers(-20, 45))
def test_rshift_round_python_ints(a, s):
    assert rshift_round(a, s) == ref_rshift_round(a, s)


@given(st.lists(st.tuples(st.integers(-(1 << 31), 1 << 31), st.integers(-16, 31)), min_size=1, max_size=30))
def test_rshift_round_arrays_elementwise_shifts(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    got = rshift_round(a, s)
    assert got.dtype == np.int64
    assert got.tolist() == [ref_rshift_round(int(x), int(k)) for x, k in zip(a, s)]


def test_rshift_round_ties_go_up_for_negatives_too():
    assert rshift_round(np.array([-3, -1, 1, 3, -2]), 1).tolist() == [-1, 0, 1, 2, -1]


def test_requantize_per_channel_broadcast():
    acc = np.arange(-12, 12, dtype=np.int64).reshape(2, 3, 2, 2)
    shifts, lo, hi = (0, 2, -1), -3, 5
    got = requantize(acc, shifts, lo, hi)
    for n, c, i, j in itertools.product(range(2), range(3), range(2), range(2)):
        want = min(max(ref_rshift_round(int(acc[n, c, i, j]), shifts[c]), lo), hi)
        assert got[n, c, i, j] == want


@pytest.mark.parametrize("x,want", [(0.5, 1), (-0.5, -1), (1.5, 2), (-2.5, -3), (2.4999, 2), (-0.49, 0),
                                    (0.49999999999999994, 0), (-0.49999999999999994, 0)])
def test_round_half_away(x, want):
    assert round_half_away(x) == want
    assert round_half_away(np.array([x])).tolist() == [want]


# ------------------------------------------------------------------ NAF
def _brute_force_min_digits(width: int) -> dict[int, int]:
    """Fewest nonzero digits over every {-1,0,1} digit string of ``width`` digits, per value."""
    best: dict[int, int] = {}
    for digits in itertools.product((-1, 0, 1), repeat=width):
        v = sum(d << k for k, d in enumerate(digits))
        n = sum(d != 0 for d in digits)
        best[v] = min(best.get(v, n), n)
    return best


MIN_DIGITS = _brute_force_min_digits(9)


def test_naf_minimal_reconstructs_and_nonadjacent_exhaustive():
    w = np.arange(-128, 128)
    d = naf(w)
    assert d.dtype == np.int8 and set(np.unique(d)) <= {-1, 0, 1}
    powers = 1 << np.arange(d.shape[-1], dtype=np.int64)
    assert np.array_equal(d.astype(np.int64) @ powers, w)
    assert not np.any((d[:, 1:] != 0) & (d[:, :-1] != 0))
    counts = naf_count(w)
    for v, c in zip(w.tolist(), counts.tolist()):
        assert c == MIN_DIGITS[v], v


@given(st.integers(-(1 << 40), 1 << 40))
def test_naf_scalar_reconstructs(v):
    d = naf(v)
    assert sum(int(x) << k for k, x in enumerate(d)) == v
    assert not any(d[k] and d[k + 1] for k in range(len(d) - 1))
    assert naf_magnitude(v) == sum(abs(int(x)) << k for k, x in enumerate(d))


def test_naf_of_powers_of_two_is_one_digit():
    w = np.array([1, 2, 64, -128, -4, 0])
    assert naf_count(w).tolist() == [1, 1, 1, 1, 1, 0]


def test_naf_width_too_small_is_refused():
    with pytest.raises(ValueError):
        naf(np.array([7]), width=2)


# ------------------------------------------------------------------ reciprocals
def rel_err(m: int, k: int, d: int) -> Fraction:
    """|m / 2^k - 1/d| relative to 1/d."""
    return Fraction(abs(m * d - (1 << k)), 1 << k)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6, 7, 9, 12, 25, 49, 64, 196, 3136])
@pytest.mark.parametrize("m_max", [15, 255, (1 << 16) - 1])
def test_reciprocal_is_the_best_within_budget(d, m_max):
    m, k = reciprocal(d, m_max)
    assert 1 <= m <= m_max
    err = rel_err(m, k, d)
    assert err <= Fraction(d, 2 << k)  # m is 2^k/d rounded to nearest
    for kk in range(48):  # brute force: no m' <= m_max at any k' does better
        for mm in {(1 << kk) // d, (1 << kk) // d + 1}:
            if 1 <= mm <= m_max:
                assert rel_err(mm, kk, d) >= err


@pytest.mark.parametrize("d", [1, 2, 4, 16, 1024])
def test_reciprocal_of_power_of_two_is_exact_single_digit(d):
    m, k = reciprocal(d)
    assert (m, 1 << k) == (1, d)


@given(st.integers(1, 5000))
@settings(max_examples=60)
def test_reciprocal_16_bit_error_bound(d):
    m, k = reciprocal(d)
    assert m < (1 << 16)
    assert rel_err(m, k, d) <= Fraction(1, (1 << 16) - 2)


def test_clamp_and_format_range():
    from pqc.intmath import clamp, format_range

    assert clamp(300, -128, 127) == 127 and clamp(np.array([-200, 5]), -128, 127).tolist() == [-128, 5]
    assert format_range(8, True) == (-128, 127) and format_range(4, False) == (0, 15)
    assert format_range(32, True) == (-(1 << 31), (1 << 31) - 1) and format_range(32, False) == (0, (1 << 31) - 1)
