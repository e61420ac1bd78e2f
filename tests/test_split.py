"""Split, fused and zero-insertion forms of transposed convolution: bit-exact.

Every form is compared with `conv_transpose2d_reference` over the whole
parameter space, the phase descriptions are pinned on the layers the
reference doc names as traps, and the MAC counts are checked.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings

from sw_driver.layers import Conv2dParams, ConvTranspose2dParams
from sw_driver.reference import conv_transpose2d_reference
from sw_driver.split import (
    fused_phases, mac_counts, run_split_fused_numpy, run_split_numpy, run_zero_insert_numpy,
    split_phases, zero_insert)

from layer_cases import random_tensors, transposed_cases

FORMS = (run_split_numpy, run_split_fused_numpy, run_zero_insert_numpy)


def _assert_all_forms_exact(params, x, w, bias):
    """Every form equals the reference bit for bit, as int32."""
    expected = conv_transpose2d_reference(x, w, bias, params)
    for form in FORMS:
        y = form(x, w, bias, params)
        assert y.dtype == np.int32, form.__name__
        np.testing.assert_array_equal(y, expected, err_msg=form.__name__)


# ---------------------------------------------------------------------------
# Sweeps


@settings(max_examples=400, deadline=None)
@given(transposed_cases())
def test_every_form_is_bit_exact(case):
    params, tensors = case
    _assert_all_forms_exact(params, *tensors)


@settings(max_examples=400, deadline=None)
@given(transposed_cases())
def test_phase_structure(case):
    params, (x, _, _) = case
    in_h, in_w = x.shape[2:]
    out = params.output_size(in_h, in_w)
    phases = split_phases(params, in_h, in_w)
    assert [ph.origin for ph in phases] == [
        (a, b) for a in range(params.stride[0]) for b in range(params.stride[1])]
    for axis, taps_of in ((0, lambda ph: ph.taps_h), (1, lambda ph: ph.taps_w)):
        s, k, p, d = (params.stride[axis], params.kernel_size[axis], params.padding[axis],
                      params.dilation[axis])
        row = phases[::params.stride[1]] if axis == 0 else phases[:params.stride[1]]
        # Each tap belongs to exactly one phase; the phases' outputs tile the axis.
        assert sorted(t for ph in row for t in taps_of(ph)) == list(range(k))
        assert sum(ph.out_size[axis] for ph in row) == out[axis]
        for phi, ph in enumerate(row):
            taps = taps_of(ph)
            assert ph.out_size[axis] == max(0, math.ceil((out[axis] - phi) / s))
            assert ph.step[axis] == s
            assert ph.dilation[axis] == d // math.gcd(d, s)
            assert list(taps) == sorted(taps, reverse=True)
            for j, t in enumerate(taps):
                # Tap j of the correlation reads input t_out + j*dil - pad: the rule's offset.
                assert (phi + p - t * d) % s == 0
                assert (phi + p - t * d) // s == j * ph.dilation[axis] - ph.padding[axis]
            if taps and ph.out_size[axis]:
                window = ph.padding[axis] + (in_h, in_w)[axis] + ph.padding_far[axis]
                assert window - ph.dilation[axis] * (len(taps) - 1) == ph.out_size[axis]


@settings(max_examples=300, deadline=None)
@given(transposed_cases())
def test_mac_counts_are_ordered(case):
    params, (x, _, _) = case
    counts = mac_counts(params, *x.shape[2:])
    assert counts.useful <= counts.split <= counts.fused
    assert counts.split <= counts.zero_insert
    fused = fused_phases(params, *x.shape[2:])
    # The fused kernel holds the longest sub-kernel; no waste in taps exactly when
    # gcd(d, s) == 1 and s divides K on both axes.
    for axis in range(2):
        s, k, d = params.stride[axis], params.kernel_size[axis], params.dilation[axis]
        longest = max(ph.kernel_size[axis] for ph in fused.phases)
        assert fused.kernel_size[axis] == longest
        assert (s * longest == k) == (math.gcd(d, s) == 1 and k % s == 0)


def test_exhaustive_one_axis_sweep():
    """Every s 1..4, K 1..7, d 1..3, op and p on the height axis, inputs of 1 and 4 rows."""
    rng = np.random.default_rng(0)
    cases = 0
    for s in range(1, 5):
        for k in range(1, 8):
            for d in range(1, 4):
                for op in range(max(s, d)):
                    for in_h in (1, 4):
                        for p in range(((in_h - 1) * s + d * (k - 1) + op) // 2 + 1):
                            params = ConvTranspose2dParams(
                                2, 2, (k, 1), (s, 1), (p, 0), (op, 0), 1, (d, 1))
                            x = rng.integers(-128, 127, (1, 2, in_h, 2), np.int8, endpoint=True)
                            w = rng.integers(-128, 127, params.weight_shape, np.int8,
                                             endpoint=True)
                            bias = rng.integers(-2**31, 2**31 - 1, 2, np.int32, endpoint=True)
                            _assert_all_forms_exact(params, x, w, bias)
                            cases += 1
    assert cases == 3098


# ---------------------------------------------------------------------------
# Traps of the reference doc, pinned


def test_dcgan_k4_s2_p1():
    params = ConvTranspose2dParams(8, 4, 4, 2, 1)
    phases = split_phases(params, 4, 4)
    # Even outputs use taps 3, 1 reading inputs t-1, t; odd outputs taps 2, 0 reading t, t+1.
    assert [(ph.origin, ph.taps_h, ph.taps_w, ph.padding, ph.padding_far, ph.out_size)
            for ph in phases] == [
        ((0, 0), (3, 1), (3, 1), (1, 1), (0, 0), (4, 4)),
        ((0, 1), (3, 1), (2, 0), (1, 0), (0, 1), (4, 4)),
        ((1, 0), (2, 0), (3, 1), (0, 1), (1, 0), (4, 4)),
        ((1, 1), (2, 0), (2, 0), (0, 0), (1, 1), (4, 4)),
    ]
    _assert_all_forms_exact(params, *random_tensors(params, (4, 4)))


def test_dcgan_fixed_mapping_is_one_pixel_off():
    """The mapping exact only when s divides K - p (taps k = phi, phi + 2 read t-1, t)
    is not PyTorch's for p = 1: a bit-exact comparison must see the difference."""
    params = ConvTranspose2dParams(1, 1, (4, 1), (2, 1), (1, 0))
    x, w, _ = random_tensors(params, (5, 1), 1)
    y = conv_transpose2d_reference(x, w, None, params)[0, 0, :, 0].astype(np.int64)
    xs, ws = np.pad(x[0, 0, :, 0].astype(np.int64), 1), w[0, 0, :, 0].astype(np.int64)
    fixed = np.empty_like(y)
    for phi in range(2):
        fixed[phi::2] = [xs[t] * ws[phi + 2] + xs[t + 1] * ws[phi] for t in range(5)]
    assert not np.array_equal(fixed, y)
    np.testing.assert_array_equal(fixed[1:], y[:-1])     # exactly one pixel late


def test_k3_s2_p1_gives_2h_minus_1_with_unequal_phases():
    params = ConvTranspose2dParams(3, 5, 3, 2, 1)
    phases = split_phases(params, 6, 6)
    assert params.output_size(6, 6) == (11, 11)
    assert [(ph.taps_h, ph.padding[0], ph.out_size[0]) for ph in phases[::2]] == [
        ((1,), 0, 6), ((2, 0), 0, 5)]
    assert [ph.kernel_size for ph in phases] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    _assert_all_forms_exact(params, *random_tensors(params, (6, 6)))


def test_k5_s2_tf_same():
    params = ConvTranspose2dParams(4, 3, 5, 2, 1, 1)
    phases = split_phases(params, 8, 8)
    assert params.output_size(8, 8) == (18, 18)
    assert [(ph.taps_h, ph.padding[0], ph.out_size[0]) for ph in phases[::2]] == [
        ((3, 1), 1, 9), ((4, 2, 0), 1, 9)]
    _assert_all_forms_exact(params, *random_tensors(params, (8, 8)))


@pytest.mark.parametrize("params", [
    ConvTranspose2dParams(3, 2, 2, 4),                         # K < s
    ConvTranspose2dParams(3, 2, (1, 3), (3, 4), (0, 1), (2, 3)),
    ConvTranspose2dParams(2, 4, 1, 2, output_padding=1, groups=2),
])
def test_kernel_smaller_than_stride_leaves_bias_only_phases(params):
    phases = split_phases(params, 3, 3)
    x, w, bias = random_tensors(params, (3, 3))
    y = conv_transpose2d_reference(x, w, bias, params)
    empty = [ph for ph in phases if not ph.has_taps]
    assert empty and all(ph.macs == 0 for ph in empty)
    for ph in empty:
        tile = y[:, :, ph.origin[0]::ph.step[0], ph.origin[1]::ph.step[1]]
        assert tile.shape[2:] == ph.out_size
        np.testing.assert_array_equal(tile, np.broadcast_to(bias[None, :, None, None],
                                                            tile.shape))
    _assert_all_forms_exact(params, x, w, bias)


@pytest.mark.parametrize("d, s, k, p, op, dilation, phases_with_taps", [
    (2, 2, 3, 1, 1, 1, [1]),        # gcd 2: only odd outputs have taps
    (2, 4, 3, 2, 1, 1, [0, 2]),     # gcd 2: two of four phases empty
    (3, 3, 2, 0, 2, 1, [0]),        # gcd 3: one phase holds both taps
    (4, 2, 3, 3, 3, 2, [1]),        # gcd 2, d/gcd = 2: sub-kernel dilated by 2
    (3, 2, 5, 2, 1, 3, [0, 1]),     # gcd 1, d = 3: sub-kernel dilated by 3
])
def test_dilation_and_stride(d, s, k, p, op, dilation, phases_with_taps):
    params = ConvTranspose2dParams(2, 3, k, s, p, op, dilation=d)
    phases = split_phases(params, 4, 4)
    assert {ph.dilation for ph in phases} == {(dilation, dilation)}
    # With gcd(d, s) > 1 only phases with (phi + p) a multiple of the gcd have taps.
    assert [ph.origin[1] for ph in phases[:s] if ph.taps_w] == phases_with_taps
    assert all((phi + p) % math.gcd(d, s) == 0 for phi in phases_with_taps)
    _assert_all_forms_exact(params, *random_tensors(params, (4, 4)))


@pytest.mark.parametrize("params", [
    ConvTranspose2dParams(100, 16, 4),                          # DCGAN projection
    ConvTranspose2dParams(4, 4, 4, 2, 1),
    ConvTranspose2dParams(4, 4, 1, 3, 0, 2),                    # phases past the output
    ConvTranspose2dParams(4, 4, 3, 4, 1, 3, groups=4),
    ConvTranspose2dParams(2, 2, 7, 4, 3, 3, dilation=3),
])
def test_1x1_input(params):
    _assert_all_forms_exact(params, *random_tensors(params, (1, 1)))


def test_phases_without_outputs():
    params = ConvTranspose2dParams(1, 1, 1, 3)
    phases = split_phases(params, 1, 1)
    assert params.output_size(1, 1) == (1, 1)
    assert [ph.out_size for ph in phases if ph.origin != (0, 0)] == [
        (1, 0), (1, 0), (0, 1), (0, 0), (0, 0), (0, 1), (0, 0), (0, 0)]


def test_fcn_k16_s8_p4():
    params = ConvTranspose2dParams(3, 2, 16, 8, 4)
    phases = split_phases(params, 3, 3)
    assert params.output_size(3, 3) == (24, 24)
    assert len(phases) == 64 and {ph.kernel_size for ph in phases} == {(2, 2)}
    assert {ph.out_size for ph in phases} == {(3, 3)}
    fused = fused_phases(params, 3, 3)
    assert fused.kernel_size == (2, 2) and fused.channels == 64 * 2
    _assert_all_forms_exact(params, *random_tensors(params, (3, 3)))


def test_negative_padding_crops():
    # p = 5 with K = 2: the correlations start inside the input.
    params = ConvTranspose2dParams(2, 2, 2, 3, 5, 2)
    assert params.output_size(6, 6) == (9, 9)
    phases = split_phases(params, 6, 6)
    assert {ph.padding[0] for ph in phases if ph.taps_h} == {-2}
    _assert_all_forms_exact(params, *random_tensors(params, (6, 6)))


def test_sub_weight_swaps_channels_per_group():
    params = ConvTranspose2dParams(4, 6, (3, 2), 2, 1, groups=2)
    w = np.arange(np.prod(params.weight_shape), dtype=np.int64).reshape(
        params.weight_shape).astype(np.int8)
    for ph in split_phases(params, 3, 3):
        sub = ph.sub_weight(w)
        assert sub.shape == (6, 2, *ph.kernel_size)
        for co in range(6):
            group, co_local = divmod(co, 3)
            for ci_local in range(2):
                for a, kh in enumerate(ph.taps_h):
                    for b, kw in enumerate(ph.taps_w):
                        assert sub[co, ci_local, a, b] == w[group * 2 + ci_local, co_local, kh, kw]


# ---------------------------------------------------------------------------
# Fused form


def test_fused_dcgan_aligns_phases_with_a_one_pixel_lead():
    params = ConvTranspose2dParams(8, 4, 4, 2, 1)
    fused = fused_phases(params, 5, 5)
    assert fused.kernel_size == (2, 2)
    assert fused.padding == (1, 1) and fused.padding_far == (1, 1)
    assert fused.conv_out_size == (6, 6)
    assert fused.origins == ((0, 0), (0, -1), (-1, 0), (-1, -1))
    assert fused.conv_params == Conv2dParams(8, 16, 2, 1, 0, 1, 1)
    assert mac_counts(params, 5, 5).fused == 36 * 4 * 16 * 8


def test_fused_pads_shorter_sub_kernels_with_zeros():
    params = ConvTranspose2dParams(1, 1, 3, 2, 1, 1)
    fused = fused_phases(params, 4, 4)
    assert fused.kernel_size == (2, 2)
    w = np.arange(1, 10, dtype=np.int8).reshape(1, 1, 3, 3)
    stacked = fused.weight(w)
    # Phase (0, 0) has the single tap (1, 1); phase (1, 1) taps (2, 0) x (2, 0).
    np.testing.assert_array_equal(stacked[0, 0], [[w[0, 0, 1, 1], 0], [0, 0]])
    np.testing.assert_array_equal(stacked[3, 0], w[0, 0][np.ix_([2, 0], [2, 0])])


def test_fused_channel_order_is_group_phase_channel():
    params = ConvTranspose2dParams(4, 6, 2, 2, groups=2)
    fused = fused_phases(params, 2, 2)
    bias = np.arange(6, dtype=np.int32)
    np.testing.assert_array_equal(fused.bias(bias), [0, 1, 2] * 4 + [3, 4, 5] * 4)
    assert fused.bias(None) is None
    _, w, _ = random_tensors(params, (2, 2))
    stacked = fused.weight(w)
    assert stacked.shape == (24, 2, 1, 1)
    for index, phase in enumerate(fused.phases):
        np.testing.assert_array_equal(stacked[index * 3: index * 3 + 3], phase.sub_weight(w)[:3])
        np.testing.assert_array_equal(stacked[12 + index * 3: 15 + index * 3],
                                      phase.sub_weight(w)[3:])


# ---------------------------------------------------------------------------
# Zero insertion


def test_zero_insert_description():
    params = ConvTranspose2dParams(2, 4, (4, 3), (2, 3), (1, 0), (1, 2), groups=2, dilation=(1, 2))
    form = zero_insert(params, 5, 4)
    assert form.inserted_size == (9, 10)
    assert form.padding == (2, 4) and form.padding_far == (3, 6)
    assert form.out_size == params.output_size(5, 4) == (11, 16)
    assert form.conv_params == Conv2dParams(2, 4, (4, 3), 1, 0, (1, 2), 2)
    w = np.arange(np.prod(params.weight_shape), dtype=np.int8).reshape(params.weight_shape)
    rotated = form.weight(w)
    assert rotated.shape == (4, 1, 4, 3)
    assert rotated[3, 0, 0, 0] == w[1, 1, 3, 2]


def test_zero_insert_crops_when_padding_exceeds_the_kernel():
    params = ConvTranspose2dParams(1, 1, 1, 3, 1, 1)
    form = zero_insert(params, 3, 3)
    assert form.padding == (-1, -1) and form.padding_far == (0, 0)
    _assert_all_forms_exact(params, *random_tensors(params, (3, 3)))


# ---------------------------------------------------------------------------
# MAC counts


@pytest.mark.parametrize("k, p, op, over_fused", [
    (4, 1, 0, 4.0),
    (5, 1, 1, 25 / 9),
    (3, 1, 1, 2.25),
])
def test_ideal_ratios(k, p, op, over_fused):
    params = ConvTranspose2dParams(64, 32, k, 2, p, op)
    counts = mac_counts(params, 256, 256)
    assert counts.zero_insert_over_split == pytest.approx(4.0, rel=0.01)
    assert counts.zero_insert_over_fused == pytest.approx(over_fused, rel=0.01)
    assert counts.split == pytest.approx(counts.useful, rel=0.01)


def test_mac_counts_exact_for_k4_s2_p0():
    params = ConvTranspose2dParams(8, 16, 4, 2)
    counts = mac_counts(params, 6, 6)
    # Per axis: 6 inputs x 4 taps useful; 2 phases x 2 taps x 7 outputs split and
    # fused (the first and last output of each phase read one input past the edge);
    # 14 outputs x 4 taps zero-inserted.
    channels = 16 * 8
    assert counts.useful == 24 * 24 * channels
    assert counts.split == counts.fused == 28 * 28 * channels
    assert counts.zero_insert == 56 * 56 * channels
    assert counts.zero_insert_over_split == counts.zero_insert_over_fused == 4.0
    assert sum(ph.macs for ph in split_phases(params, 6, 6)) == counts.split


# ---------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("call", [
    lambda p: split_phases(p, 2, 2), lambda p: fused_phases(p, 2, 2),
    lambda p: zero_insert(p, 2, 2), lambda p: mac_counts(p, 2, 2),
    lambda p: run_split_numpy(np.zeros((1, 1, 2, 2), np.int8), np.zeros((1, 1, 1, 1), np.int8),
                              None, p),
])
def test_conv_params_are_refused(call):
    with pytest.raises(ValueError, match="^params must be a ConvTranspose2dParams, "
                                         "got Conv2dParams$"):
        call(Conv2dParams(1, 1, 1))


def test_sub_weight_refuses_a_wrong_shape():
    phase = split_phases(ConvTranspose2dParams(2, 4, 3, 2), 2, 2)[0]
    with pytest.raises(ValueError, match=r"^w shape must be \(2, 4, 3, 3\), got \(4, 2, 3, 3\)$"):
        phase.sub_weight(np.zeros((4, 2, 3, 3), np.int8))


def test_run_forms_check_tensors():
    params = ConvTranspose2dParams(2, 2, 3, 2)
    x, w, _ = random_tensors(params, (2, 2))
    for form in FORMS:
        with pytest.raises(ValueError, match="^bias dtype must be int32, got int64$"):
            form(x, w, np.zeros(2, np.int64), params)
