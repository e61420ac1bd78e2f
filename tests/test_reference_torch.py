"""Golden references against PyTorch's float64 conv2d / conv_transpose2d.

Integer-valued float64 tensors give exact results while every partial sum
stays below 2^53, which holds here by a wide margin; torch's sum (bias
included) is then wrapped to int32 like the references'. These tests need
torch and fail, rather than skip, when it is missing: install the CPU wheel
with `.venv/bin/pip install torch==2.13.0`.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_driver.layers import Conv2dParams, ConvTranspose2dParams
from sw_driver.reference import conv2d_reference, conv_transpose2d_reference

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
else:
    # Tiny float64 convolutions run about 100x faster without intra-op threads.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def require_torch():
    """Fail every test of this module with a clear message when torch is missing."""
    if torch is None:
        pytest.fail("torch is not installed, so the references cannot be compared with "
                    "PyTorch; install it with `.venv/bin/pip install torch==2.13.0`",
                    pytrace=False)


def _torch_args(x, w, bias):
    """float64 torch tensors holding the integer values of x, w and bias."""
    as_torch = lambda a: torch.from_numpy(a.astype(np.float64))
    return as_torch(x), as_torch(w), None if bias is None else as_torch(bias)


def _wrapped(result):
    """A float64 torch result of exact integers, wrapped to int32."""
    return result.numpy().astype(np.int64).astype(np.int32)


def torch_conv2d(x, w, bias, params):
    """PyTorch's conv2d on the integer values, wrapped to int32."""
    return _wrapped(F.conv2d(*_torch_args(x, w, bias), stride=params.stride,
                             padding=params.padding, dilation=params.dilation,
                             groups=params.groups))


def torch_conv_transpose2d(x, w, bias, params):
    """PyTorch's conv_transpose2d on the integer values, wrapped to int32."""
    return _wrapped(F.conv_transpose2d(*_torch_args(x, w, bias), stride=params.stride,
                                       padding=params.padding,
                                       output_padding=params.output_padding,
                                       groups=params.groups, dilation=params.dilation))


# ---------------------------------------------------------------------------
# Strategies (the same space as test_reference.py)


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
    """A valid Conv2dParams (K 1..7, s 1..4, d 1..3, paddings giving H, W in 1..9)."""
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


# ---------------------------------------------------------------------------
# Sweeps


@settings(max_examples=400, deadline=None)
@given(conv_cases())
def test_conv2d_matches_torch(case):
    params, (x, w, bias) = case
    np.testing.assert_array_equal(conv2d_reference(x, w, bias, params),
                                  torch_conv2d(x, w, bias, params))


@settings(max_examples=400, deadline=None)
@given(transposed_cases())
def test_conv_transpose2d_matches_torch(case):
    params, (x, w, bias) = case
    np.testing.assert_array_equal(conv_transpose2d_reference(x, w, bias, params),
                                  torch_conv_transpose2d(x, w, bias, params))


@pytest.mark.parametrize("params, size", [
    (ConvTranspose2dParams(100, 32, 4), (1, 1)),                 # DCGAN projection
    (ConvTranspose2dParams(32, 16, 4, 2, 1), (4, 4)),            # DCGAN / SNGAN / GP-GAN
    (ConvTranspose2dParams(16, 3, 5, 2, 1, 1), (8, 8)),          # DCGAN (TF) K5 s2
    (ConvTranspose2dParams(16, 8, 3, 2, 1, 1), (8, 8)),          # fast style transfer
    (ConvTranspose2dParams(16, 8, 3, 2, 1, 0), (7, 5)),          # 2H - 1
    (ConvTranspose2dParams(4, 4, 16, 8, 4), (3, 3)),             # FCN x8
    (ConvTranspose2dParams(8, 8, 4, 2, 1, groups=8), (5, 6)),    # depthwise
    (ConvTranspose2dParams(6, 4, (2, 3), (4, 3), (0, 1), (3, 2), 2, (2, 3)), (3, 4)),
])
def test_workload_layers_match_torch(params, size):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 127, (2, params.in_channels, *size), np.int8, endpoint=True)
    w = rng.integers(-128, 127, params.weight_shape, np.int8, endpoint=True)
    bias = rng.integers(-2**31, 2**31 - 1, params.out_channels, np.int32, endpoint=True)
    np.testing.assert_array_equal(conv_transpose2d_reference(x, w, bias, params),
                                  torch_conv_transpose2d(x, w, bias, params))


# ---------------------------------------------------------------------------
# Validation agrees with PyTorch on which layers exist


def _torch_accepts(call):
    """True when torch runs `call` without a RuntimeError."""
    try:
        call()
    except RuntimeError:
        return False
    return True


def _we_accept(kind, args, size):
    """True when `kind(*args)` builds and yields an output for `size`."""
    try:
        kind(*args).output_size(*size)
    except ValueError:
        return False
    return True


_SMALL = st.integers(-1, 3)


@settings(max_examples=300, deadline=None)
@given(k=st.integers(1, 4), s=_SMALL, p=_SMALL, d=_SMALL, op=st.integers(0, 3),
       h=st.integers(1, 5))
def test_validation_agrees_with_torch(k, s, p, d, op, h):
    x = torch.zeros(1, 2, h, h, dtype=torch.float64)
    w = torch.zeros(2, 2, k, k, dtype=torch.float64)
    torch_t = _torch_accepts(lambda: F.conv_transpose2d(x, w, None, s, p, op, 1, d))
    assert _we_accept(ConvTranspose2dParams, (2, 2, k, s, p, op, 1, d), (h, h)) == torch_t
    torch_c = _torch_accepts(lambda: F.conv2d(x, w, None, s, p, d, 1))
    assert _we_accept(Conv2dParams, (2, 2, k, s, p, d, 1), (h, h)) == torch_c
