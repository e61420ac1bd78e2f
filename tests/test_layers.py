"""Layer descriptions: normalisation, sizes, MAC counts and every validation error."""

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from sw_driver.layers import Conv2dParams, ConvTranspose2dParams


def _raises(message, call, *args, **kwargs):
    """Assert that call(*args, **kwargs) raises ValueError with exactly `message`."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call(*args, **kwargs)


# ---------------------------------------------------------------------------
# Normalisation and derived values


def test_int_or_pair_normalised_to_pairs():
    layer = ConvTranspose2dParams(4, 6, 3, stride=(2, 1), padding=[1, 0],
                                  output_padding=(1, 0), groups=2, dilation=np.int64(1))
    assert layer.kernel_size == (3, 3)
    assert layer.stride == (2, 1)
    assert layer.padding == (1, 0)
    assert layer.output_padding == (1, 0)
    assert layer.dilation == (1, 1)
    assert all(type(v) is int for v in (*layer.kernel_size, *layer.dilation))
    assert layer == ConvTranspose2dParams(4, 6, (3, 3), (2, 1), (1, 0), (1, 0), 2, (1, 1))


def test_argument_order_follows_pytorch():
    conv = Conv2dParams(2, 4, 3, 2, 1, 3, 2)
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((2, 2), (1, 1), (3, 3), 2)
    tconv = ConvTranspose2dParams(2, 4, 3, 2, 1, 1, 2, 3)
    assert (tconv.stride, tconv.padding, tconv.output_padding, tconv.groups,
            tconv.dilation) == ((2, 2), (1, 1), (1, 1), 2, (3, 3))


def test_params_are_frozen():
    layer = Conv2dParams(1, 1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.stride = (2, 2)


def test_weight_shapes():
    assert Conv2dParams(6, 4, (3, 5), groups=2).weight_shape == (4, 3, 3, 5)
    assert ConvTranspose2dParams(6, 4, (3, 5), groups=2).weight_shape == (6, 2, 3, 5)


@pytest.mark.parametrize("layer, size, expected", [
    (Conv2dParams(1, 1, 3, padding=1), (7, 5), (7, 5)),
    (Conv2dParams(1, 1, 3, stride=2), (7, 8), (3, 3)),
    (Conv2dParams(1, 1, 3, dilation=2, padding=(0, 2)), (5, 5), (1, 5)),
    (ConvTranspose2dParams(1, 1, 4, 2, 1), (4, 16), (8, 32)),            # DCGAN
    (ConvTranspose2dParams(100, 512, 4), (1, 1), (4, 4)),                # DCGAN projection
    (ConvTranspose2dParams(1, 1, 3, 2, 1), (5, 8), (9, 15)),             # 2H - 1
    (ConvTranspose2dParams(1, 1, 3, 2, 1, 1), (5, 8), (10, 16)),         # SAME
    # "TF-SAME" K5 s2 p1 op1: 2H + 2 outputs, of which TF's SAME output is the first 2H.
    (ConvTranspose2dParams(1, 1, 5, 2, 1, 1), (8, 16), (18, 34)),
    (ConvTranspose2dParams(1, 1, 16, 8, 4), (3, 5), (24, 40)),           # FCN x8
    (ConvTranspose2dParams(1, 1, 3, 1, 0, 2, dilation=3), (2, 2), (10, 10)),
])
def test_output_size(layer, size, expected):
    assert layer.output_size(*size) == expected


# ---------------------------------------------------------------------------
# MAC counts


def _brute_force_macs(layer, h, w):
    """Count (input, tap, output) triples inside input and output, by enumeration."""
    out_h, out_w = layer.output_size(h, w)
    transposed = isinstance(layer, ConvTranspose2dParams)
    per_axis = []
    for axis, (n_in, n_out) in enumerate(((h, out_h), (w, out_w))):
        s, p, d = layer.stride[axis], layer.padding[axis], layer.dilation[axis]
        count = 0
        for k in range(layer.kernel_size[axis]):
            if transposed:
                count += sum(0 <= i * s + k * d - p < n_out for i in range(n_in))
            else:
                count += sum(0 <= o * s + k * d - p < n_in for o in range(n_out))
        per_axis.append(count)
    return per_axis[0] * per_axis[1] * layer.out_channels * (layer.in_channels // layer.groups)


@st.composite
def _layers(draw):
    """Any valid layer of either kind with a non-empty output, and its input size."""
    groups = draw(st.sampled_from([1, 2, 3]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = draw(st.tuples(st.integers(1, 7), st.integers(1, 7)))
    s = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    d = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    p = draw(st.tuples(st.integers(0, 8), st.integers(0, 8)))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    if draw(st.booleans()):
        op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
        layer = ConvTranspose2dParams(c_in, c_out, k, s, p, op, groups, d)
    else:
        layer = Conv2dParams(c_in, c_out, k, s, p, d, groups)
    try:
        layer.output_size(h, w)
    except ValueError:
        assume(False)
    return layer, h, w


@settings(max_examples=150, deadline=None)
@given(_layers())
def test_macs_match_brute_force(case):
    layer, h, w = case
    assert layer.macs(h, w) == _brute_force_macs(layer, h, w)


def test_macs_without_borders_are_the_dense_product():
    # No padding: every conv product reads the input; every transposed product lands.
    assert Conv2dParams(8, 16, 3).macs(10, 12) == 8 * 10 * 16 * 8 * 9
    assert ConvTranspose2dParams(8, 16, 4, 2).macs(5, 6) == 5 * 6 * 8 * 16 * 16
    assert ConvTranspose2dParams(8, 16, 4, 2, groups=4).macs(5, 6) == 5 * 6 * 8 * 4 * 16


def test_transposed_macs_exclude_cropped_products():
    # K4 s2 p1 on 1 pixel: taps 0 and 3 land at -1 and 2, outside the 2 outputs.
    assert ConvTranspose2dParams(1, 1, (4, 1), (2, 1), (1, 0)).macs(1, 1) == 2


def test_conv_macs_exclude_padding_products():
    # K3 p1 on 1 pixel: only the centre tap reads the input.
    assert Conv2dParams(1, 1, 3, padding=1).macs(1, 1) == 1


# ---------------------------------------------------------------------------
# Validation errors


@pytest.mark.parametrize("kind", [Conv2dParams, ConvTranspose2dParams])
@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=0), "in_channels must be an int >= 1, got 0"),
    (dict(in_channels=2.0), "in_channels must be an int >= 1, got 2.0"),
    (dict(in_channels=True), "in_channels must be an int >= 1, got True"),
    (dict(out_channels=-3), "out_channels must be an int >= 1, got -3"),
    (dict(groups=0), "groups must be an int >= 1, got 0"),
    (dict(in_channels=3, groups=2), "in_channels must be a multiple of groups=2, got 3"),
    (dict(out_channels=5, groups=2), "out_channels must be a multiple of groups=2, got 5"),
    (dict(kernel_size=(3, 0)), "kernel_size must be >= 1 on both axes, got (3, 0)"),
    (dict(kernel_size=2.5), "kernel_size must be an int or a pair of ints, got 2.5"),
    (dict(kernel_size=(1, 2, 3)),
     "kernel_size must be an int or a pair of ints, got (1, 2, 3)"),
    (dict(kernel_size="3"), "kernel_size must be an int or a pair of ints, got '3'"),
    (dict(stride=0), "stride must be >= 1 on both axes, got (0, 0)"),
    (dict(stride=(1, True)), "stride must be an int or a pair of ints, got (1, True)"),
    (dict(padding=(0, -1)), "padding must be >= 0 on both axes, got (0, -1)"),
    (dict(dilation=(0, 1)), "dilation must be >= 1 on both axes, got (0, 1)"),
])
def test_parameter_errors(kind, kwargs, message):
    args = dict(in_channels=2, out_channels=2, kernel_size=3) | kwargs
    _raises(message, kind, **args)


@pytest.mark.parametrize("kwargs, message", [
    (dict(stride=2, output_padding=2),
     "output_padding must be in 0..1 on the height axis (below max(stride, dilation) = 2), "
     "got (2, 2)"),
    (dict(stride=(3, 2), dilation=(1, 1), output_padding=(2, 2)),
     "output_padding must be in 0..1 on the width axis (below max(stride, dilation) = 2), "
     "got (2, 2)"),
    (dict(output_padding=1),
     "output_padding must be in 0..0 on the height axis (below max(stride, dilation) = 1), "
     "got (1, 1)"),
    (dict(stride=2, output_padding=(0, -1)),
     "output_padding must be in 0..1 on the width axis (below max(stride, dilation) = 2), "
     "got (0, -1)"),
    (dict(output_padding=(1,)),
     "output_padding must be an int or a pair of ints, got (1,)"),
])
def test_output_padding_errors(kwargs, message):
    _raises(message, ConvTranspose2dParams, 2, 2, 3, **kwargs)


def test_output_padding_may_reach_dilation():
    assert ConvTranspose2dParams(1, 1, 3, 1, 0, 2, dilation=3).output_padding == (2, 2)


def test_input_size_errors():
    layer = Conv2dParams(1, 1, 3)
    _raises("input height must be an int >= 1, got 0", layer.output_size, 0, 4)
    _raises("input width must be an int >= 1, got 2.0", layer.output_size, 4, 2.0)
    _raises("input height must be an int >= 1, got 0", layer.macs, 0, 4)


def test_empty_output_errors():
    conv = Conv2dParams(1, 1, 3, dilation=2)
    _raises("output height must be >= 1, got -1 for input (3, 5) with "
            "Conv2dParams(in_channels=1, out_channels=1, kernel_size=(3, 3), stride=(1, 1), "
            "padding=(0, 0), dilation=(2, 2), groups=1)", conv.output_size, 3, 5)
    tconv = ConvTranspose2dParams(1, 1, 1, padding=(0, 1))
    _raises("output width must be >= 1, got -1 for input (1, 1) with "
            "ConvTranspose2dParams(in_channels=1, out_channels=1, kernel_size=(1, 1), "
            "stride=(1, 1), padding=(0, 1), output_padding=(0, 0), groups=1, "
            "dilation=(1, 1))", tconv.output_size, 1, 1)


# ---------------------------------------------------------------------------
# Tensor checks


_CONV = Conv2dParams(4, 6, (3, 2), groups=2)
_TCONV = ConvTranspose2dParams(4, 6, (3, 2), stride=2, groups=2)


def _tensors(layer, x_shape=(2, 4, 5, 5)):
    """Well-formed x, w and bias for `layer`."""
    return (np.zeros(x_shape, np.int8), np.zeros(layer.weight_shape, np.int8),
            np.zeros(layer.out_channels, np.int32))


def test_check_tensors_returns_output_shape():
    x, w, bias = _tensors(_CONV)
    assert _CONV.check_tensors(x, w, bias) == (2, 6, 3, 4)
    assert _CONV.check_tensors(x, w, None) == (2, 6, 3, 4)
    x, w, bias = _tensors(_TCONV)
    assert _TCONV.check_tensors(x, w, bias) == (2, 6, 11, 10)


@pytest.mark.parametrize("layer, w_shape", [(_CONV, (6, 2, 3, 2)), (_TCONV, (4, 3, 3, 2))])
@pytest.mark.parametrize("change, message", [
    (dict(x=[[0]]), "x must be a numpy array, got list"),
    (dict(x=np.zeros((2, 4, 5, 5), np.uint8)), "x dtype must be int8, got uint8"),
    (dict(x=np.zeros((4, 5, 5), np.int8)),
     "x shape must be (N, 4, H, W) with N, H, W >= 1, got (4, 5, 5)"),
    (dict(x=np.zeros((1, 3, 5, 5), np.int8)),
     "x shape must be (N, 4, H, W) with N, H, W >= 1, got (1, 3, 5, 5)"),
    (dict(x=np.zeros((0, 4, 5, 5), np.int8)),
     "x shape must be (N, 4, H, W) with N, H, W >= 1, got (0, 4, 5, 5)"),
    (dict(x=np.zeros((1, 4, 5, 0), np.int8)),
     "x shape must be (N, 4, H, W) with N, H, W >= 1, got (1, 4, 5, 0)"),
    (dict(w=np.zeros((1, 1, 1, 1), np.float32)), "w dtype must be int8, got float32"),
    (dict(w=np.zeros((4, 4, 3, 2), np.int8)), "w shape must be {w_shape}, got (4, 4, 3, 2)"),
    (dict(bias=np.zeros(6, np.int64)), "bias dtype must be int32, got int64"),
    (dict(bias=np.zeros((1, 6), np.int32)), "bias shape must be (6,), got (1, 6)"),
    (dict(bias=(0,) * 6), "bias must be a numpy array, got tuple"),
])
def test_check_tensors_errors(layer, w_shape, change, message):
    x, w, bias = _tensors(layer)
    tensors = dict(x=x, w=w, bias=bias) | change
    _raises(message.format(w_shape=w_shape), layer.check_tensors, **tensors)


def test_check_tensors_refuses_an_empty_output():
    x, w, bias = _tensors(_CONV, (1, 4, 2, 5))
    with pytest.raises(ValueError, match=r"^output height must be >= 1, got 0 for input \(2, 5\)"):
        _CONV.check_tensors(x, w, bias)
