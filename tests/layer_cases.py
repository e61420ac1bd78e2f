"""Layers and int8 tensors shared by the reference and split tests.

`conv_cases` and `transposed_cases` are hypothesis strategies of
`(params, (x, w, bias))` over the whole parameter space of each layer kind;
`random_tensors` gives fixed-seed uniform tensors for a given layer.
"""

import numpy as np
from hypothesis import strategies as st

from sw_driver.layers import Conv2dParams, ConvTranspose2dParams

__all__ = ["conv_cases", "transposed_cases", "random_tensors"]


def _fill(rng, shape, mode, dtype):
    """Random integers of `dtype`: uniform, its minimum everywhere, or its two extremes."""
    info = np.iinfo(dtype)
    if mode == "uniform":
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if mode == "minimum":
        return np.full(shape, info.min, dtype)
    return rng.choice(np.array([info.min, info.max], dtype), size=shape)


@st.composite
def _channels(draw):
    """(in_channels, out_channels, groups): groups 1, 2 or depthwise, channels 1..9."""
    kind = draw(st.sampled_from(["single", "pair", "depthwise"]))
    if kind == "single":
        return draw(st.integers(1, 9)), draw(st.integers(1, 9)), 1
    if kind == "pair":
        return 2 * draw(st.integers(1, 4)), 2 * draw(st.integers(1, 4)), 2
    c_in = draw(st.integers(1, 9))
    return c_in, c_in * draw(st.integers(1, 9 // c_in)), c_in


@st.composite
def _tensors(draw, params, h, w):
    """x (batch 1..2), w and bias (or None) for `params`, with -128/127 extremes likely."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x_mode, w_mode, b_mode = (draw(st.sampled_from(["uniform", "minimum", "extremes"]))
                              for _ in range(3))
    x = _fill(rng, (draw(st.integers(1, 2)), params.in_channels, h, w), x_mode, np.int8)
    weight = _fill(rng, params.weight_shape, w_mode, np.int8)
    bias = None if draw(st.booleans()) else _fill(rng, (params.out_channels,), b_mode, np.int32)
    return x, weight, bias


@st.composite
def conv_cases(draw):
    """A valid Conv2dParams (K 1..7, s 1..4, d 1..3, every padding giving H, W in 1..9)."""
    c_in, c_out, groups = draw(_channels())
    k, s, d, p, size = [], [], [], [], []
    for _ in range(2):
        k.append(draw(st.integers(1, 7)))
        s.append(draw(st.integers(1, 4)))
        d.append(draw(st.integers(1, 3)))
        span = d[-1] * (k[-1] - 1) + 1
        p_min = max(0, (span - 9 + 1) // 2)
        p.append(draw(st.integers(p_min, max(p_min, span))))
        size.append(draw(st.integers(max(1, span - 2 * p[-1]), 9)))
    params = Conv2dParams(c_in, c_out, tuple(k), tuple(s), tuple(p), tuple(d), groups)
    return params, draw(_tensors(params, *size))


@st.composite
def transposed_cases(draw):
    """A valid ConvTranspose2dParams (K 1..7, s 1..4, d 1..3, every p and op), H, W 1..9."""
    c_in, c_out, groups = draw(_channels())
    k, s, d, p, op, size = [], [], [], [], [], []
    for _ in range(2):
        k.append(draw(st.integers(1, 7)))
        s.append(draw(st.integers(1, 4)))
        d.append(draw(st.integers(1, 3)))
        op.append(draw(st.integers(0, max(s[-1], d[-1]) - 1)))
        size.append(draw(st.integers(1, 9)))
        p_max = ((size[-1] - 1) * s[-1] + d[-1] * (k[-1] - 1) + op[-1]) // 2
        p.append(draw(st.integers(0, p_max)))
    params = ConvTranspose2dParams(c_in, c_out, tuple(k), tuple(s), tuple(p), tuple(op),
                                   groups, tuple(d))
    return params, draw(_tensors(params, *size))


def random_tensors(params, size, batch=2, seed=0):
    """Uniform int8 x, w and int32 bias for `params` and an input of `size`."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 127, (batch, params.in_channels, *size), np.int8, endpoint=True)
    w = rng.integers(-128, 127, params.weight_shape, np.int8, endpoint=True)
    bias = rng.integers(-2**31, 2**31 - 1, params.out_channels, np.int32, endpoint=True)
    return x, w, bias
