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

from layer_cases import conv_cases, random_tensors, transposed_cases

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
    x, w, bias = random_tensors(params, size, seed=1)
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
