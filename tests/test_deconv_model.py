"""ConvTranspose2d on the model backend: every method bit-exact against the
scatter-form reference over the whole parameter space, plus Conv2d dilation,
method selection and the refusals users meet."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from hw.config import AccelConfig
from sw_driver.driver import Accelerator
from sw_driver.layers import Conv2dParams, ConvTranspose2dParams
from sw_driver.model import ModelTransport
from sw_driver.program import METHODS
from sw_driver.quant import requantize
from sw_driver.reference import conv2d_reference, conv_transpose2d_reference

ACCELERATORS = {shape: Accelerator(ModelTransport(AccelConfig(rows=shape[0], cols=shape[1])))
                for shape in ((8, 8), (4, 16), (3, 5))}


@st.composite
def deconv_layers(draw):
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, d * (k - 1))) for k, d in zip(kernel, dilation))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation))
    groups = draw(st.sampled_from([1, 2, 3]))
    c_in = groups * draw(st.integers(1, 6))
    c_out = groups * draw(st.integers(1, 6))
    height, width = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    params = ConvTranspose2dParams(c_in, c_out, kernel, stride=stride, padding=padding,
                                   output_padding=output_padding, groups=groups,
                                   dilation=dilation)
    out_h, out_w = (s * (n - 1) - 2 * p + d * (k - 1) + op + 1 for s, n, p, d, k, op in zip(
        stride, (height, width), padding, dilation, kernel, output_padding))
    if out_h < 1 or out_w < 1:
        return draw(deconv_layers())
    return params, height, width, draw(st.integers(0, 2 ** 32 - 1)), \
        draw(st.sampled_from(sorted(ACCELERATORS))), draw(st.booleans())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deconv_layers())
def test_every_method_is_bit_exact(layer):
    params, height, width, seed, shape, requantised = layer
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (int(rng.integers(1, 3)), params.in_channels, height, width),
                     dtype=np.int8)
    w = rng.integers(-128, 128, params.weight_shape, dtype=np.int8)
    bias = rng.integers(-10 ** 6, 10 ** 6, params.out_channels, dtype=np.int32)
    expected = conv_transpose2d_reference(x, w, bias, params)
    requant = None
    if requantised:
        requant = dict(multiplier=rng.integers(1 << 30, (1 << 31) - 1, params.out_channels),
                       shift=rng.integers(0, 20, params.out_channels), zero_point=3,
                       act_min=-128, act_max=100)
        expected = np.moveaxis(requantize(np.moveaxis(expected, 1, -1), requant["multiplier"],
                                          requant["shift"], 3, -128, 100), -1, 1)
    accelerator = ACCELERATORS[shape]
    for method in METHODS:
        y, stats = accelerator.conv_transpose2d(
            x, w, bias, stride=params.stride, padding=params.padding,
            output_padding=params.output_padding, dilation=params.dilation,
            groups=params.groups, method=method, requant=requant)
        np.testing.assert_array_equal(y, expected, err_msg=method)
        assert stats["method"] == method
        assert stats["macs_useful"] <= stats["macs_issued"]


@settings(max_examples=60, deadline=None)
@given(kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
       size=st.tuples(st.integers(1, 12), st.integers(1, 12)), seed=st.integers(0, 1000))
def test_conv2d_dilation_by_subsampled_views(kernel, stride, dilation, padding, size, seed):
    params = Conv2dParams(5, 6, kernel, stride=stride, padding=padding, dilation=dilation)
    try:
        params.output_size(*size)
    except ValueError:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 5, *size), dtype=np.int8)
    w = rng.integers(-128, 128, params.weight_shape, dtype=np.int8)
    y, _ = ACCELERATORS[(8, 8)].conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_array_equal(y, conv2d_reference(x, w, None, params))


def test_auto_picks_the_fewest_modelled_cycles():
    rng = np.random.default_rng(1)
    accelerator = ACCELERATORS[(8, 8)]
    for c_out in (3, 64):       # few output channels favour split-fused
        x = rng.integers(-128, 128, (1, 16, 8, 8), dtype=np.int8)
        w = rng.integers(-128, 128, (16, c_out, 4, 4), dtype=np.int8)
        cycles = {method: accelerator.conv_transpose2d(x, w, stride=2, padding=1,
                                                       method=method)[1]["cycles"]
                  for method in METHODS}
        _, stats = accelerator.conv_transpose2d(x, w, stride=2, padding=1, method="auto")
        assert stats["method"] == min(cycles, key=cycles.get)
        assert stats["cycles"] == min(cycles.values())
    assert cycles["split"] * 3.5 < cycles["zero-insert"]


def test_split_uses_one_descriptor_per_phase_and_strided_stores():
    accelerator = ACCELERATORS[(8, 8)]
    x = np.ones((1, 8, 4, 4), dtype=np.int8)
    w = np.ones((8, 8, 4, 4), dtype=np.int8)
    _, stats = accelerator.conv_transpose2d(x, w, stride=2, padding=1, method="split")
    assert stats["descriptors"] == 4


@pytest.mark.parametrize("options, message", [
    (dict(method="scatter"), r"^method must be one of split, split-fused, zero-insert or auto, "
                             r"not 'scatter'$"),
    (dict(stride=2, output_padding=2), r"output_padding must be in 0..1"),
    (dict(groups=3), r"in_channels must be a multiple of groups=3, got 8"),
])
def test_refusals(options, message):
    x = np.zeros((1, 8, 4, 4), dtype=np.int8)
    w = np.zeros((8, 8, 3, 3), dtype=np.int8)
    method = options.pop("method", "zero-insert")
    with pytest.raises(ValueError, match=message):
        ACCELERATORS[(8, 8)].conv_transpose2d(x, w, method=method, **options)


def test_strides_beyond_the_hardware_stride_max():
    """Every pass of a transposed convolution has stride 1, so its stride is free."""
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 3, 3, 2), dtype=np.int8)
    w = rng.integers(-128, 128, (3, 2, 6, 7), dtype=np.int8)
    params = ConvTranspose2dParams(3, 2, (6, 7), stride=(5, 6), padding=(1, 2))
    for method in METHODS:
        y, _ = ACCELERATORS[(4, 16)].conv_transpose2d(x, w, stride=(5, 6), padding=(1, 2),
                                                      method=method)
        np.testing.assert_array_equal(y, conv_transpose2d_reference(x, w, None, params))


def test_zero_insert_refuses_kernels_beyond_kernel_max_but_split_runs_them():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 4, 3, 3), dtype=np.int8)
    w = rng.integers(-128, 128, (4, 5, 16, 16), dtype=np.int8)
    accelerator = ACCELERATORS[(8, 8)]
    with pytest.raises(ValueError, match=r"^kernel_size \(16, 16\) is not supported: the "
                                         r"accelerator's kernel_max 7 allows 1..7$"):
        accelerator.conv_transpose2d(x, w, stride=8, padding=4, method="zero-insert")
    y, stats = accelerator.conv_transpose2d(x, w, stride=8, padding=4, method="auto")
    params = ConvTranspose2dParams(4, 5, 16, stride=8, padding=4)
    np.testing.assert_array_equal(y, conv_transpose2d_reference(x, w, None, params))
    assert stats["method"] in ("split", "split-fused")
