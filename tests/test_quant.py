"""The vectorised requantisation golden model against scalar references.

`ref_*` are transcribed line by line from gemmlowp (fixedpoint.h) and TFLite
(quantization_util.cc) with Python ints, independent of the NumPy code.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_driver.quant import (INT32_MAX, INT32_MIN, quantize_multiplier, requantize,
                             rounding_divide_by_pot, srdhm)


def ref_srdhm(a, b):
    overflow = a == b and a == INT32_MIN
    ab_64 = a * b
    nudge = (1 << 30) if ab_64 >= 0 else (1 - (1 << 30))
    numerator = ab_64 + nudge
    # C++ `/` truncates toward zero.
    ab_x2_high32 = abs(numerator) // (1 << 31) * (1 if numerator >= 0 else -1)
    return INT32_MAX if overflow else ab_x2_high32


def ref_rounding_divide_by_pot(x, exponent):
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def ref_requantize(acc, mult, shift, zero_point, act_min, act_max):
    value = ref_rounding_divide_by_pot(ref_srdhm(acc, mult), shift) + zero_point
    return min(max(value, act_min), act_max)


def ref_quantize_multiplier(scale):
    q, exponent = math.frexp(scale)
    q_fixed = math.floor(q * (1 << 31) + 0.5)   # std::round, q * 2**31 >= 2**30 > 0
    if q_fixed == 1 << 31:
        q_fixed //= 2
        exponent += 1
    return q_fixed, -exponent


int32s = st.integers(INT32_MIN, INT32_MAX)
int8s = st.integers(-128, 127)
shifts = st.integers(0, 31)

EXTREME_INT32 = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, INT32_MAX - 1, INT32_MAX]


# srdhm

@given(int32s, int32s)
def test_srdhm_matches_reference(a, b):
    assert srdhm(a, b) == ref_srdhm(a, b)


def test_srdhm_extremes_vectorised():
    a, b = np.meshgrid(np.array(EXTREME_INT32), np.array(EXTREME_INT32))
    expected = [[ref_srdhm(int(p), int(q)) for p, q in zip(row_a, row_b)] for row_a, row_b in zip(a, b)]
    result = srdhm(a, b)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, expected)


def test_srdhm_saturates_only_int32_min_squared():
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert srdhm(INT32_MIN, INT32_MIN + 1) == INT32_MAX
    assert srdhm(INT32_MIN, INT32_MAX) == INT32_MIN + 1
    assert srdhm(INT32_MIN, -INT32_MAX) == INT32_MAX


@pytest.mark.parametrize("a, b, expected", [
    (1, 1 << 30, 1),            # +0.5 rounds up
    (-1, 1 << 30, 0),           # -0.5 rounds up too (gemmlowp's nudge), not away from zero
    (3, 1 << 30, 2),            # +1.5
    (-3, 1 << 30, -1),          # -1.5
    (1, (1 << 30) - 1, 0),      # just below +0.5
    (-1, (1 << 30) + 1, -1),    # just beyond -0.5
])
def test_srdhm_ties(a, b, expected):
    assert srdhm(a, b) == ref_srdhm(a, b) == expected


@given(int32s, int32s)
def test_srdhm_is_rounding_half_up(a, b):
    """srdhm is a*b / 2**31 rounded half towards plus infinity, saturated."""
    exact = Fraction(a * b, 1 << 31)
    assert srdhm(a, b) == min(math.floor(exact + Fraction(1, 2)), INT32_MAX)


# rounding_divide_by_pot

@given(int32s, shifts)
def test_rounding_divide_by_pot_matches_reference(x, exponent):
    assert rounding_divide_by_pot(x, exponent) == ref_rounding_divide_by_pot(x, exponent)


@given(int32s, shifts)
def test_rounding_divide_by_pot_is_rounding_half_away_from_zero(x, exponent):
    exact = Fraction(abs(x), 1 << exponent)
    magnitude = math.floor(exact + Fraction(1, 2))
    assert rounding_divide_by_pot(x, exponent) == (magnitude if x >= 0 else -magnitude)


def test_rounding_divide_by_pot_ties_every_shift():
    # x = odd * 2**(exponent - 1) divides to exactly odd / 2.
    ties = [(odd << (exponent - 1), exponent, (odd + (1 if odd > 0 else -1)) // 2)
            for exponent in range(1, 32) for odd in (1, 3, -1, -3)
            if INT32_MIN <= odd << (exponent - 1) <= INT32_MAX]
    x, exponent, expected = (np.array(column) for column in zip(*ties))
    np.testing.assert_array_equal(rounding_divide_by_pot(x, exponent), expected)
    for tie, exponent, _ in ties:
        for x in (tie - 1, tie, tie + 1):
            assert rounding_divide_by_pot(x, exponent) == ref_rounding_divide_by_pot(x, exponent)


@pytest.mark.parametrize("x", EXTREME_INT32)
def test_rounding_divide_by_pot_extremes(x):
    exponents = np.arange(32)
    expected = [ref_rounding_divide_by_pot(x, int(e)) for e in exponents]
    np.testing.assert_array_equal(rounding_divide_by_pot(x, exponents), expected)
    assert rounding_divide_by_pot(x, 0) == x


# requantize

@settings(max_examples=300)
@given(int32s, int32s, shifts, int8s, int8s, int8s)
def test_requantize_matches_reference(acc, mult, shift, zero_point, bound_a, bound_b):
    act_min, act_max = min(bound_a, bound_b), max(bound_a, bound_b)
    result = requantize(acc, mult, shift, zero_point, act_min, act_max)
    assert result.dtype == np.int8
    assert result == ref_requantize(acc, mult, shift, zero_point, act_min, act_max)


@given(st.data())
def test_requantize_per_channel_broadcast(data):
    channels = data.draw(st.integers(1, 12))
    pixels = data.draw(st.integers(1, 4))
    acc = np.array(data.draw(st.lists(int32s, min_size=pixels * channels,
                                      max_size=pixels * channels))).reshape(pixels, channels)
    mult = np.array(data.draw(st.lists(int32s, min_size=channels, max_size=channels)))
    shift = np.array(data.draw(st.lists(shifts, min_size=channels, max_size=channels)))
    zero_point = data.draw(int8s)
    act_min = data.draw(int8s)
    act_max = data.draw(st.integers(act_min, 127))
    result = requantize(acc, mult, shift, zero_point, act_min, act_max)
    assert result.shape == (pixels, channels) and result.dtype == np.int8
    expected = [[ref_requantize(int(acc[p, c]), int(mult[c]), int(shift[c]),
                                zero_point, act_min, act_max) for c in range(channels)]
                for p in range(pixels)]
    np.testing.assert_array_equal(result, expected)


def test_requantize_extremes():
    mults = [INT32_MIN, -1, 0, 1, 1 << 30, INT32_MAX]
    cases = [(acc, mult, shift, zero_point, act_min, act_max)
             for acc in EXTREME_INT32 for mult in mults for shift in (0, 1, 30, 31)
             for zero_point in (-128, 0, 127) for act_min, act_max in ((-128, 127), (-5, 9), (3, 3))]
    acc, mult, shift, zero_point, act_min, act_max = (np.array(column) for column in zip(*cases))
    expected = [ref_requantize(*case) for case in cases]
    result = requantize(acc, mult, shift, zero_point, act_min, act_max)
    np.testing.assert_array_equal(result, expected)


def test_requantize_clamps_at_the_activation_bounds():
    # mult INT32_MAX with shift 0 passes small accumulators unchanged.
    acc = np.arange(-20, 21)
    result = requantize(acc, INT32_MAX, 0, 0, -7, 11)
    np.testing.assert_array_equal(result, np.clip(acc, -7, 11))
    assert requantize(INT32_MAX, INT32_MAX, 0, 127, -128, 127) == 127
    assert requantize(INT32_MIN, INT32_MAX, 0, -128, -128, 127) == -128
    assert requantize(1000, INT32_MAX, 0, 0, 5, 5) == 5


def test_requantize_zero_point_extremes():
    acc = np.arange(-300, 301)
    for zero_point in (-128, 127):
        expected = np.clip(acc + zero_point, -128, 127)
        np.testing.assert_array_equal(requantize(acc, INT32_MAX, 0, zero_point, -128, 127), expected)


@pytest.mark.parametrize("arguments, message", [
    ((0, 1, 32, 0, -128, 127), r"^shift must be in 0\.\.31, not 32$"),
    ((0, 1, -1, 0, -128, 127), r"^shift must be in 0\.\.31, not -1$"),
    ((0, 1 << 31, 0, 0, -128, 127), r"^mult must be in -2147483648\.\.2147483647, not 2147483648$"),
    ((1 << 31, 1, 0, 0, -128, 127), r"^acc must be in -2147483648\.\.2147483647, not 2147483648$"),
    ((0, 1, 0, 128, -128, 127), r"^zero_point must be in -128\.\.127, not 128$"),
    ((0, 1, 0, 0, -129, 127), r"^act_min must be in -128\.\.127, not -129$"),
    ((0, 1, 0, 0, -128, 128), r"^act_max must be in -128\.\.127, not 128$"),
    ((0, 1, 0, 0, 5, 4), r"^act_min must be <= act_max, not 5 > 4$"),
    ((0, [1, 2], [0, 40], 0, -128, 127), r"^shift must be in 0\.\.31, not 40$"),
])
def test_requantize_refuses_out_of_range(arguments, message):
    with pytest.raises(ValueError, match=message):
        requantize(*arguments)


def test_requantize_refuses_non_integers():
    with pytest.raises(TypeError, match=r"^acc must be an integer or an array of integers, not 1\.5$"):
        requantize(1.5, 1, 0, 0, -128, 127)


# quantize_multiplier

# Above 1 - 2**-32 the scale rounds to 1.0, which TFLite represents with a left shift.
@given(st.floats(min_value=2.0 ** -32, max_value=1 - 2.0 ** -32, exclude_max=True))
def test_quantize_multiplier_matches_reference_and_round_trips(scale):
    mult, shift = quantize_multiplier(scale)
    assert (mult, shift) == ref_quantize_multiplier(scale)
    assert 1 << 30 <= mult <= INT32_MAX and 0 <= shift <= 31
    represented = Fraction(mult, 1 << (31 + shift))
    # Rounding mult to nearest: relative error at most half a unit of mult >= 2**30.
    assert abs(represented - Fraction(scale)) <= Fraction(scale) / (1 << 31)


@pytest.mark.parametrize("scale, expected", [
    (0.5, (1 << 30, 0)),
    (0.75, (3 << 29, 0)),
    (0.25, (1 << 30, 1)),
    (2.0 ** -32, (1 << 30, 31)),
    (2.0 ** -32 * (1 - 2.0 ** -40), (1 << 30, 31)),   # mult rounds to 2**31: halved, shift 31
    (1 - 2.0 ** -40, (INT32_MAX, 0)),                  # rounds to 1.0: nearest right-shift value
    (0.5 - 2.0 ** -40, (1 << 30, 0)),                  # mult rounds to 2**31: halved, shift 0
])
def test_quantize_multiplier_edges(scale, expected):
    assert quantize_multiplier(scale) == expected


def test_quantize_multiplier_rounds_half_away_from_zero():
    # mult * 2 = 2**31 + 1 exactly: the tie must go up, as with std::round.
    scale = ((1 << 31) + 1) / 2.0 ** 32
    assert quantize_multiplier(scale) == ((1 << 30) + 1, 0)


def test_quantize_multiplier_per_channel():
    scales = np.array([0.5, 0.3, 1e-3, 2.0 ** -32])
    mults, shifts = quantize_multiplier(scales)
    assert mults.dtype == np.int32 and shifts.dtype == np.int32 and mults.shape == (4,)
    assert list(zip(mults.tolist(), shifts.tolist())) == [ref_quantize_multiplier(s) for s in scales]
    assert quantize_multiplier(np.float32(0.5)) == (1 << 30, 0)


@pytest.mark.parametrize("scale, message", [
    (0.0, r"^scale must be in the open interval \(0, 1\), not 0\.0$"),
    (-0.5, r"^scale must be in the open interval \(0, 1\), not -0\.5$"),
    (1.0, r"^scale must be in the open interval \(0, 1\), not 1\.0$"),
    (3, r"^scale must be in the open interval \(0, 1\), not 3\.0$"),
    (float("nan"), r"^scale must be in the open interval \(0, 1\), not nan$"),
    (2.0 ** -33, r"^scale 1\.1641532182693481e-10 is too small: it needs a right shift of 32, "
                 r"at most 31 is possible \(smallest scale 2\*\*-32\)$"),
    (np.array([0.5, 1.5]), r"^scale\[1\] must be in the open interval \(0, 1\), not 1\.5$"),
])
def test_quantize_multiplier_refuses(scale, message):
    with pytest.raises(ValueError, match=message):
        quantize_multiplier(scale)


def test_quantize_multiplier_refuses_non_numbers():
    with pytest.raises(TypeError, match=r"^scale must be a real number or an array of them, not 'x'$"):
        quantize_multiplier("x")
