"""Golden model of the requantisation that turns int32 accumulators into int8.

Bit exact with TFLite / gemmlowp (`MultiplyByQuantizedMultiplier` restricted to
right shifts) and with `hw.requant`. All arithmetic is on int64 arrays or Python
ints: no floating point touches a result, only `quantize_multiplier` reads a
float scale.
"""

import math

import numpy as np

__all__ = ["INT32_MIN", "INT32_MAX", "srdhm", "rounding_divide_by_pot", "requantize",
           "quantize_multiplier"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN = -(1 << 7)
INT8_MAX = (1 << 7) - 1
MAX_SHIFT = 31


def _int_array(name, value, low, high):
    """`value` as an int64 array, refused unless every element is an integer in low..high."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer or an array of integers, not {value!r}")
    if array.size:
        for extreme in (int(array.min()), int(array.max())):
            if not low <= extreme <= high:
                raise ValueError(f"{name} must be in {low}..{high}, not {extreme}")
    return array.astype(np.int64)


def _result(array, dtype):
    # `[()]` turns a 0-d array into a NumPy scalar and leaves other arrays alone.
    return array.astype(dtype)[()]


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul of int32 arrays (broadcast).

    The high half of `2*a*b`, that is `a*b / 2**31` rounded half towards plus
    infinity (the nudge is asymmetric: -0.5 rounds to 0), saturated to INT32_MAX
    in its one overflow case `a == b == INT32_MIN`.
    """
    a = _int_array("a", a, INT32_MIN, INT32_MAX)
    b = _int_array("b", b, INT32_MIN, INT32_MAX)
    ab = a * b                                   # |ab| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C integer division truncates toward zero; `>>` alone would floor.
    quotient = np.where(total >= 0, total >> 31, -((-total) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return _result(np.where(overflow, INT32_MAX, quotient), np.int32)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: `x / 2**exponent` rounded half away from zero.

    `x` int32 and `exponent` in 0..31, broadcast against each other.
    """
    x = _int_array("x", x, INT32_MIN, INT32_MAX)
    exponent = _int_array("exponent", exponent, 0, MAX_SHIFT)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return _result((x >> exponent) + (remainder > threshold), np.int32)


def requantize(acc, mult, shift, zero_point, act_min, act_max):
    """int8 `clamp(rounding_divide_by_pot(srdhm(acc, mult), shift) + zero_point, act_min, act_max)`.

    `acc` has the output channel as its last axis, e.g. shape (..., C); `mult`
    (int32) and `shift` (0..31) are per channel, shape (C,), or scalars. The
    zero point and activation bounds are int8 and normally scalars.
    """
    acc = _int_array("acc", acc, INT32_MIN, INT32_MAX)
    mult = _int_array("mult", mult, INT32_MIN, INT32_MAX)
    shift = _int_array("shift", shift, 0, MAX_SHIFT)
    zero_point = _int_array("zero_point", zero_point, INT8_MIN, INT8_MAX)
    act_min = _int_array("act_min", act_min, INT8_MIN, INT8_MAX)
    act_max = _int_array("act_max", act_max, INT8_MIN, INT8_MAX)
    inverted = act_min > act_max
    if np.any(inverted):
        low, high = np.broadcast_arrays(act_min, act_max)
        index = np.argmax(inverted)
        raise ValueError(f"act_min must be <= act_max, not {int(low.flat[index])} > "
                         f"{int(high.flat[index])}")
    scaled = rounding_divide_by_pot(srdhm(acc, mult), shift).astype(np.int64)
    return _result(np.clip(scaled + zero_point, act_min, act_max), np.int8)


def _quantize_scalar(name, scale):
    if not 0.0 < scale < 1.0:           # also refuses NaN
        raise ValueError(f"{name} must be in the open interval (0, 1), not {scale!r}")
    fraction, exponent = math.frexp(scale)      # scale = fraction * 2**exponent, fraction in [0.5, 1)
    scaled = math.ldexp(fraction, 31)           # exact: only the exponent changes
    mult = math.floor(scaled)
    if scaled - mult >= 0.5:                    # half away from zero, like TFLite's std::round
        mult += 1
    shift = -exponent
    if mult == 1 << 31:
        mult >>= 1
        shift -= 1
    if shift < 0:
        # scale rounds to 1.0, which needs a left shift; INT32_MAX with shift 0
        # (1 - 2**-31) is the nearest value the hardware has.
        return INT32_MAX, 0
    if shift > MAX_SHIFT:
        raise ValueError(f"{name} {scale!r} is too small: it needs a right shift of {shift}, "
                         f"at most {MAX_SHIFT} is possible (smallest scale 2**-32)")
    return mult, shift


def quantize_multiplier(scale):
    """TFLite QuantizeMultiplier for a real scale in (0, 1): `(mult, shift)`.

    `scale ~= mult * 2**-31 * 2**-shift` with mult in [2**30, 2**31 - 1] rounded
    to nearest and shift in 0..31. A NumPy array of scales (per channel) gives
    two int32 arrays of its shape; a scalar gives two ints.
    """
    array = np.asarray(scale)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"scale must be a real number or an array of them, not {scale!r}")
    if array.ndim == 0:
        return _quantize_scalar("scale", float(array))
    mults = np.empty(array.shape, dtype=np.int32)
    shifts = np.empty(array.shape, dtype=np.int32)
    for index in np.ndindex(array.shape):
        name = f"scale[{', '.join(map(str, index))}]"
        mults[index], shifts[index] = _quantize_scalar(name, float(array[index]))
    return mults, shifts
