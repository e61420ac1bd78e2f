"""Golden references against their definitions written as explicit index sums.

The checks here build, per axis, the 0/1 matrix of the index relation that
defines each operator and contract x and w through it: a formulation that
shares nothing with the references' slicing. Torch comparisons live in
test_reference_torch.py.
"""

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_driver.layers import Conv2dParams, ConvTranspose2dParams
from sw_driver.reference import conv2d_reference, conv_transpose2d_reference

from layer_cases import conv_cases, transposed_cases

INT32_MAX = 2**31 - 1


def _relation(n_out, n_in, k, fits):
    """0/1 int64 array R[o, i, k] = fits(o, i, k)."""
    o, i, t = np.meshgrid(np.arange(n_out), np.arange(n_in), np.arange(k), indexing="ij")
    return fits(o, i, t).astype(np.int64)


def _contract(rel_h, rel_w, x, w_conv, bias, groups):
    """y[n, co, a, b] = bias + sum R_h[a, i, kh] R_w[b, j, kw] x[n, ci, i, j] w[co, ci', kh, kw]."""
    n, c_in, h, wd = x.shape
    c_out = w_conv.shape[0]
    xg = x.astype(np.int64).reshape(n, groups, c_in // groups, h, wd)
    wg = w_conv.astype(np.int64).reshape(groups, c_out // groups, *w_conv.shape[1:])
    rows = np.einsum("aik,ngcij->ngcakj", rel_h, xg)
    taps = np.einsum("bjl,ngcakj->ngcakbl", rel_w, rows)
    y = np.einsum("ngcakbl,gockl->ngoab", taps, wg)
    y = y.reshape(n, c_out, rel_h.shape[0], rel_w.shape[0])
    if bias is not None:
        y = y + bias.astype(np.int64)[None, :, None, None]
    return (y % 2**32).astype(np.uint32).view(np.int32)


def conv2d_by_definition(x, w, bias, params):
    """Conv2d: output o reads input i = o*s + k*d - p."""
    out_h, out_w = params.output_size(*x.shape[2:])
    rels = [_relation(n_out, n_in, k, lambda o, i, t, s=s, d=d, p=p: o * s + t * d - p == i)
            for n_out, n_in, k, s, d, p in zip(
                (out_h, out_w), x.shape[2:], params.kernel_size, params.stride,
                params.dilation, params.padding)]
    return _contract(*rels, x, w, bias, params.groups)


def conv_transpose2d_by_definition(x, w, bias, params):
    """ConvTranspose2d: input i reaches output o = i*s + k*d - p."""
    out_h, out_w = params.output_size(*x.shape[2:])
    rels = [_relation(n_out, n_in, k, lambda o, i, t, s=s, d=d, p=p: i * s + t * d - p == o)
            for n_out, n_in, k, s, d, p in zip(
                (out_h, out_w), x.shape[2:], params.kernel_size, params.stride,
                params.dilation, params.padding)]
    g = params.groups
    c_in, c_out_g = w.shape[:2]
    w_conv = w.reshape(g, c_in // g, c_out_g, *w.shape[2:]).swapaxes(1, 2).reshape(
        g * c_out_g, c_in // g, *w.shape[2:])
    return _contract(*rels, x, w_conv, bias, g)


# ---------------------------------------------------------------------------
# Sweeps


@settings(max_examples=400, deadline=None)
@given(conv_cases())
def test_conv2d_matches_definition(case):
    params, (x, w, bias) = case
    y = conv2d_reference(x, w, bias, params)
    assert y.dtype == np.int32
    assert y.shape == params.check_tensors(x, w, bias)
    np.testing.assert_array_equal(y, conv2d_by_definition(x, w, bias, params))


@settings(max_examples=400, deadline=None)
@given(transposed_cases())
def test_conv_transpose2d_matches_definition(case):
    params, (x, w, bias) = case
    y = conv_transpose2d_reference(x, w, bias, params)
    assert y.dtype == np.int32
    assert y.shape == params.check_tensors(x, w, bias)
    np.testing.assert_array_equal(y, conv_transpose2d_by_definition(x, w, bias, params))


@settings(max_examples=100, deadline=None)
@given(conv_cases(), st.data())
def test_transposed_is_the_adjoint_of_conv(case, data):
    """<conv(x), y> == <x, conv_transpose(y)> with the same weight tensor."""
    conv, (x, w, _) = case
    h, wd = x.shape[2:]
    out_h, out_w = conv.output_size(h, wd)
    # Output padding that makes the transposed layer return exactly h x wd.
    op = tuple((n + 2 * p - d * (k - 1) - 1) % s for n, p, d, k, s in zip(
        (h, wd), conv.padding, conv.dilation, conv.kernel_size, conv.stride))
    tconv = ConvTranspose2dParams(conv.out_channels, conv.in_channels, conv.kernel_size,
                                  conv.stride, conv.padding, op, conv.groups, conv.dilation)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(-128, 127, (x.shape[0], conv.out_channels, out_h, out_w),
                     dtype=np.int8, endpoint=True)
    forward = conv2d_reference(x, w, None, conv).astype(np.int64)
    backward = conv_transpose2d_reference(y, w, None, tconv).astype(np.int64)
    assert backward.shape == x.shape
    assert np.sum(forward * y) == np.sum(x.astype(np.int64) * backward)


# ---------------------------------------------------------------------------
# Explicit cases


def test_conv1d_by_hand():
    params = Conv2dParams(1, 1, (1, 3), stride=(1, 2), padding=(0, 1))
    x = np.array([[[[1, 2, 3, 4, 5]]]], np.int8)
    w = np.array([[[[1, 10, 100]]]], np.int8)
    # Outputs at 0, 2, 4 read inputs (-1, 0, 1), (1, 2, 3), (3, 4, 5).
    expected = [[[[0 * 1 + 1 * 10 + 2 * 100, 2 + 30 + 400, 4 + 50 + 0]]]]
    np.testing.assert_array_equal(conv2d_reference(x, w, None, params), expected)


def test_conv_transpose1d_by_hand():
    params = ConvTranspose2dParams(1, 1, (1, 3), stride=(1, 2), padding=(0, 1))
    x = np.array([[[[1, 2, 3]]]], np.int8)
    w = np.array([[[[1, 10, 100]]]], np.int8)
    # Uncropped: x[i] * w[k] at 2i + k: [1, 10, 102, 20, 203, 30, 300]; p=1 crops one each side.
    np.testing.assert_array_equal(conv_transpose2d_reference(x, w, None, params),
                                  [[[[10, 102, 20, 203, 30]]]])


def test_bias_only_reaches_every_output():
    params = ConvTranspose2dParams(2, 3, 1, stride=3, output_padding=2)
    x = np.ones((1, 2, 2, 2), np.int8)
    w = np.ones(params.weight_shape, np.int8)
    bias = np.array([7, -8, 9], np.int32)
    y = conv_transpose2d_reference(x, w, bias, params)
    assert y.shape == (1, 3, 6, 6)
    expected = np.zeros((6, 6), np.int32)
    expected[::3, ::3] = 2
    np.testing.assert_array_equal(y[0], expected[None] + bias[:, None, None])


@pytest.mark.parametrize("reference, params", [
    (conv2d_reference, Conv2dParams(64, 64, 3, padding=1)),
    (conv_transpose2d_reference, ConvTranspose2dParams(64, 64, 3, padding=1)),
])
def test_accumulation_wraps_to_int32(reference, params):
    x = np.full((1, 64, 3, 3), -128, np.int8)
    w = np.full(params.weight_shape, -128, np.int8)
    bias = np.full(64, INT32_MAX, np.int32)
    y = reference(x, w, bias, params)
    # Centre pixel: 9 taps x 64 channels x 2^14 = 9437184, plus INT32_MAX: wraps negative.
    total = 9 * 64 * 128 * 128 + INT32_MAX
    assert y[0, 0, 1, 1] == total - 2**32
    assert y.dtype == np.int32


def test_minimum_values_without_bias():
    params = ConvTranspose2dParams(9, 9, 7, stride=1, padding=3, groups=1)
    x = np.full((1, 9, 1, 1), -128, np.int8)
    w = np.full(params.weight_shape, -128, np.int8)
    y = conv_transpose2d_reference(x, w, None, params)
    np.testing.assert_array_equal(y, np.full((1, 9, 1, 1), 9 * 16384, np.int32))


def test_depthwise_keeps_channels_apart():
    params = Conv2dParams(3, 3, 1, groups=3)
    x = np.arange(3, dtype=np.int8).reshape(1, 3, 1, 1)
    w = np.array([10, 20, 30], np.int8).reshape(3, 1, 1, 1)
    np.testing.assert_array_equal(conv2d_reference(x, w, None, params).ravel(), [0, 20, 60])


@pytest.mark.parametrize("reference, params, message", [
    (conv2d_reference, ConvTranspose2dParams(1, 1, 1),
     "params must be a Conv2dParams, got ConvTranspose2dParams"),
    (conv_transpose2d_reference, Conv2dParams(1, 1, 1),
     "params must be a ConvTranspose2dParams, got Conv2dParams"),
])
def test_wrong_params_kind_is_refused(reference, params, message):
    x, w = np.zeros((1, 1, 1, 1), np.int8), np.zeros((1, 1, 1, 1), np.int8)
    with pytest.raises(ValueError, match=f"^{message}$"):
        reference(x, w, None, params)


def test_tensor_errors_surface():
    params = Conv2dParams(2, 2, 1)
    with pytest.raises(ValueError, match=r"^x dtype must be int8, got int16$"):
        conv2d_reference(np.zeros((1, 2, 1, 1), np.int16), np.zeros((2, 2, 1, 1), np.int8),
                         None, params)


@pytest.mark.parametrize("reference, params", [
    (conv2d_reference, Conv2dParams(64, 64, 3, padding=1)),
    (conv_transpose2d_reference, ConvTranspose2dParams(64, 64, 3, padding=1)),
])
def test_64_channel_layer_is_fast(reference, params):
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 64, 32, 32), dtype=np.int8)
    w = rng.integers(-128, 128, params.weight_shape, dtype=np.int8)
    start = time.perf_counter()
    reference(x, w, None, params)
    assert time.perf_counter() - start < 1.0
