"""Transposed convolution as ordinary stride-1 convolutions (split / phase form).

The decomposition is exact, per axis, for PyTorch `ConvTranspose2d` with any
kernel K, stride s, padding p, output padding op and dilation d (see
shared/reference/split-deconvolution.md). On one axis write each output index
as o = s*t + phi with phase phi in 0..s-1. Tap k contributes to phase phi
exactly when (phi + p - k*d) is a multiple of s, and then it reads input
t + (phi + p - k*d)/s. Consecutive taps of one phase are s/gcd(d, s) apart in
k and d/gcd(d, s) apart in input offset, so each phase is a stride-1
correlation of the original input with the phase's taps taken in decreasing
k, at dilation d/gcd(d, s) (1 whenever d == 1 or d divides s), whose first
tap's offset is the correlation's (signed) leading padding. Its results land at
outputs o = phi, phi + s, ... : ceil((O - phi) / s) of them, possibly none. A
phase with no taps (K < s, or gcd(d, s) > 1) outputs its bias only.

Two dimensions combine the axes: s_h * s_w phases, each a 2-D stride-1
convolution with a sub-kernel of len(taps_h) x len(taps_w) taps.

Three executable forms, each checked bit-exactly against
`conv_transpose2d_reference`:

- `split_phases` / `run_split_numpy`: one convolution per phase, results
  interleaved with step (s_h, s_w).
- `fused_phases` / `run_split_fused_numpy`: all phases' sub-kernels stacked as
  the output channels of one stride-1 convolution, then a depth-to-space
  interleave.
- `zero_insert` / `run_zero_insert_numpy`: the usual baseline, a stride-1
  convolution over the zero-inserted input with the rotated kernel.

`mac_counts` compares their multiply-accumulate counts.
"""

from dataclasses import dataclass
import math

import numpy as np

from .layers import Conv2dParams, ConvTranspose2dParams
from .reference import conv2d_reference

__all__ = ["Phase", "split_phases", "run_split_numpy",
           "FusedPhases", "fused_phases", "run_split_fused_numpy",
           "ZeroInsert", "zero_insert", "run_zero_insert_numpy",
           "MacCounts", "mac_counts"]


# ---------------------------------------------------------------------------
# Shared helpers


def _check_params(params):
    """Refuse anything but a ConvTranspose2dParams."""
    if not isinstance(params, ConvTranspose2dParams):
        raise ValueError(
            f"params must be a ConvTranspose2dParams, got {type(params).__name__}")


def _check_weight(params, w):
    """Refuse a weight whose shape is not the layer's (C_in, C_out/g, KH, KW)."""
    if w.shape != params.weight_shape:
        raise ValueError(f"w shape must be {params.weight_shape}, got {w.shape}")


def _conv_weight(w_taps, groups):
    """Turn selected transposed-layout taps (C_in, C_out/g, a, b) into a conv weight.

    Channel ci of group g maps to output channel co of the same group: the
    result is (C_out, C_in/g, a, b) with w'[g*Cog + co, ci', ...] equal to
    w_taps[g*Cig + ci', co, ...].
    """
    c_in, c_out_g = w_taps.shape[:2]
    c_in_g = c_in // groups
    grouped = w_taps.reshape(groups, c_in_g, c_out_g, *w_taps.shape[2:])
    return np.ascontiguousarray(grouped.swapaxes(1, 2)).reshape(
        groups * c_out_g, c_in_g, *w_taps.shape[2:])


def _window(x, top, rows, left, cols):
    """Rows top..top+rows-1 and columns left..left+cols-1 of x, zero outside x.

    Negative top/left read zeros before the input (padding); a window that
    starts inside or ends before the input's far edge crops it.
    """
    n, c, in_h, in_w = x.shape
    out = np.zeros((n, c, rows, cols), dtype=x.dtype)
    r0, r1 = max(top, 0), min(top + rows, in_h)
    c0, c1 = max(left, 0), min(left + cols, in_w)
    if r0 < r1 and c0 < c1:
        out[:, :, r0 - top: r1 - top, c0 - left: c1 - left] = x[:, :, r0:r1, c0:c1]
    return out


def _interleave(y, tile, origin, step):
    """Write tile[..., v, u] to y[..., origin_h + s_h*v, origin_w + s_w*u] inside y.

    Positions that fall outside y (negative origin, or beyond the far edge)
    are dropped.
    """
    (v0, v1, o_h), (u0, u1, o_w) = (
        _strided_range(o, s, len_tile, len_y)
        for o, s, len_tile, len_y in zip(origin, step, tile.shape[2:], y.shape[2:]))
    if v0 < v1 and u0 < u1:
        y[:, :, o_h: o_h + (v1 - v0 - 1) * step[0] + 1: step[0],
          o_w: o_w + (u1 - u0 - 1) * step[1] + 1: step[1]] = tile[:, :, v0:v1, u0:u1]


def _strided_range(origin, step, length, limit):
    """Indices v in [v0, v1) with 0 <= origin + step*v < limit, and origin + step*v0."""
    v0 = max(0, -(origin // step))
    v1 = min(length, (limit - origin + step - 1) // step)
    return v0, v1, origin + step * v0


def _bias_tile(bias, n, c_out, rows, cols):
    """An int32 (n, c_out, rows, cols) tile holding the bias (zero without one)."""
    tile = np.zeros((n, c_out, rows, cols), dtype=np.int32)
    if bias is not None:
        tile[...] = bias[None, :, None, None]
    return tile


# ---------------------------------------------------------------------------
# Split form: one stride-1 convolution per phase


@dataclass(frozen=True)
class _AxisPhase:
    """One phase on one axis: taps in correlation order, offset, dilation, count."""

    taps: tuple[int, ...]
    offset: int
    dilation: int
    count: int


def _axis_phases(k, s, p, d, n_out):
    """The s phases of one axis (see the module docstring for the rule)."""
    sub_dilation = d // math.gcd(d, s)
    phases = []
    for phi in range(s):
        taps = tuple(t for t in reversed(range(k)) if (phi + p - t * d) % s == 0)
        offset = (phi + p - taps[0] * d) // s if taps else 0
        phases.append(_AxisPhase(taps, offset, sub_dilation, (n_out - phi + s - 1) // s))
    return phases


def _far_padding(offset, n_taps, dilation, count, n_in):
    """Padding after the input so a stride-1 correlation yields exactly `count` outputs.

    The correlation starts reading at input `offset`; 0 for an axis without taps.
    """
    return offset + count + dilation * (n_taps - 1) - n_in if n_taps else 0


@dataclass(frozen=True)
class Phase:
    """Phase (phi_h, phi_w) of a transposed convolution as a stride-1 convolution.

    Fields:
        params: the transposed layer.
        origin: (phi_h, phi_w), the output pixel of the phase's result (0, 0).
        step: (s_h, s_w); phase result (t, u) lands at output
            (phi_h + s_h*t, phi_w + s_w*u).
        taps_h, taps_w: original kernel indices kh / kw, in the order the
            stride-1 correlation uses them (decreasing k); empty when the
            phase has no tap on that axis.
        padding: (top, left) leading padding of the correlation, signed:
            negative crops. 0 on an axis without taps.
        padding_far: (bottom, right) trailing padding, signed, chosen so the
            correlation yields exactly `out_size`. 0 on an axis without taps.
        dilation: (dh, dw) of the correlation, d / gcd(d, s) per axis.
        out_size: (ceil((OH - phi_h)/s_h), ceil((OW - phi_w)/s_w)); may hold 0.

    The correlation computes, for t < out_size[0], u < out_size[1]:
        r[co, t, u] = bias[co] + sum over ci of co's group, a, b of
            x[ci, t + a*dh - top, u + b*dw - left] * sub_weight(w)[co, ci', a, b]
    with x zero outside the input.
    """

    params: ConvTranspose2dParams
    origin: tuple[int, int]
    step: tuple[int, int]
    taps_h: tuple[int, ...]
    taps_w: tuple[int, ...]
    padding: tuple[int, int]
    padding_far: tuple[int, int]
    dilation: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def kernel_size(self):
        """(len(taps_h), len(taps_w)): the sub-kernel size, possibly with a 0."""
        return (len(self.taps_h), len(self.taps_w))

    @property
    def has_taps(self):
        """False when the phase's outputs are bias only."""
        return bool(self.taps_h and self.taps_w)

    @property
    def macs(self):
        """Multiply-accumulates of the phase's convolution for one image."""
        (kh, kw), (oh, ow) = self.kernel_size, self.out_size
        return kh * kw * oh * ow * self.params.out_channels * (
            self.params.in_channels // self.params.groups)

    @property
    def sub_params(self):
        """The correlation as a Conv2dParams over `input_window` (stride 1, padding 0).

        Only defined for a phase with taps.
        """
        return Conv2dParams(self.params.in_channels, self.params.out_channels,
                            self.kernel_size, 1, 0, self.dilation, self.params.groups)

    def sub_weight(self, w):
        """The phase's sub-kernel as a conv weight (C_out, C_in/g, kh', kw').

        w is the layer's transposed weight (C_in, C_out/g, KH, KW). Entry
        [co, ci', a, b] is w[ci, co', taps_h[a], taps_w[b]] with ci, co in the
        same group.
        """
        _check_weight(self.params, w)
        taps = w[:, :, list(self.taps_h)][:, :, :, list(self.taps_w)]
        return _conv_weight(taps, self.params.groups)

    def input_window(self, x):
        """The input the correlation reads: x padded/cropped by padding, padding_far."""
        (top, left), (bottom, right) = self.padding, self.padding_far
        _, _, in_h, in_w = x.shape
        return _window(x, -top, in_h + top + bottom, -left, in_w + left + right)


def _both_axes(params, in_h, in_w):
    """The per-axis phases of `params` for an in_h x in_w input: (rows, columns)."""
    _check_params(params)
    return tuple(_axis_phases(params.kernel_size[a], params.stride[a], params.padding[a],
                              params.dilation[a], n_out)
                 for a, n_out in enumerate(params.output_size(in_h, in_w)))


def split_phases(params, in_h, in_w):
    """The s_h * s_w phases of `params` for an in_h x in_w input, phi_h-major."""
    rows, cols = _both_axes(params, in_h, in_w)
    phases = []
    for phi_h, ph in enumerate(rows):
        for phi_w, pw in enumerate(cols):
            phases.append(Phase(
                params=params,
                origin=(phi_h, phi_w),
                step=params.stride,
                taps_h=ph.taps,
                taps_w=pw.taps,
                padding=(-ph.offset, -pw.offset),
                padding_far=(
                    _far_padding(ph.offset, len(ph.taps), ph.dilation, ph.count, in_h),
                    _far_padding(pw.offset, len(pw.taps), pw.dilation, pw.count, in_w)),
                dilation=(ph.dilation, pw.dilation),
                out_size=(ph.count, pw.count)))
    return phases


def run_split_numpy(x, w, bias, params):
    """Transposed convolution computed phase by phase with `conv2d_reference`.

    Same contract as `conv_transpose2d_reference` and bit-identical to it.
    """
    _check_params(params)
    y = np.zeros(params.check_tensors(x, w, bias), dtype=np.int32)
    n = x.shape[0]
    for phase in split_phases(params, x.shape[2], x.shape[3]):
        if 0 in phase.out_size:
            continue
        if phase.has_taps:
            tile = conv2d_reference(phase.input_window(x), phase.sub_weight(w), bias,
                                    phase.sub_params)
        else:
            tile = _bias_tile(bias, n, params.out_channels, *phase.out_size)
        _interleave(y, tile, phase.origin, phase.step)
    return y


# ---------------------------------------------------------------------------
# Fused form: all phases as the output channels of one convolution


@dataclass(frozen=True)
class _AxisFused:
    """The fused convolution on one axis.

    Fused output v reads inputs start + v + j*dilation, j < size. Phase phi's
    result t is fused output v = t + leads[phi], so it lands at output
    s*v + origins[phi] with origins[phi] = phi - s*leads[phi].
    """

    size: int
    start: int
    dilation: int
    count: int
    leads: tuple[int, ...]
    origins: tuple[int, ...]


def _axis_fused(phases, s):
    """Align the phases of one axis on a common input window.

    Every phase's first tap is shifted to the window's first tap (its lead is
    how many fused outputs it is delayed by); shorter sub-kernels are padded
    with zero taps at their end. A phase without taps gets lead 0.
    """
    with_taps = [ph for ph in phases if ph.taps]
    start = min(ph.offset for ph in with_taps)
    leads = tuple(ph.offset - start if ph.taps else 0 for ph in phases)
    return _AxisFused(
        size=max(len(ph.taps) for ph in with_taps),
        start=start,
        dilation=with_taps[0].dilation,
        count=max(lead + ph.count for lead, ph in zip(leads, phases)),
        leads=leads,
        origins=tuple(phi - s * lead for phi, lead in enumerate(leads)))


@dataclass(frozen=True)
class FusedPhases:
    """All phases of a transposed convolution stacked into one stride-1 convolution.

    Applies to every layer. Per axis, each phase's sub-kernel is aligned so
    that its first tap reads the same input as every other phase's first tap
    (the phase's results are then delayed by its lead, in fused outputs), and
    zero taps are appended to reach the longest sub-kernel. The convolution
    has s_h*s_w*C_out output channels ordered (group, phase, channel within
    group): for groups == 1 channel phase*C_out + co. Phase (phi_h, phi_w)'s
    block at fused output (v, u) lands at layer output
    (origins[i][0] + s_h*v, origins[i][1] + s_w*u) when inside the output
    (`depth_to_space`). A phase without taps is an all-zero block: bias only.

    Extra (zero) MACs compared with the split form, per axis (the 2-D
    factor is the product of the two axes'):
      - taps: the fused kernel has n = max over phases of len(taps), so the
        s phases together run s*n taps per output position instead of K.
        The counts are equal (no waste) exactly when gcd(d, s) == 1 and s
        divides K; with d == 1 the factor is s*ceil(K/s)/K (K3 s2: 4/3 per
        axis, 16/9 in 2-D; K5 s2: 6/5 and 36/25). Phases without taps
        (K < s, or gcd(d, s) > 1) are part of this: whole zero blocks.
      - borders: the fused output count is the largest lead + phase count,
        so a phase computes up to max(leads) outputs that fall outside the
        layer output and are dropped (one row and one column for K4 s2 p1,
        none for K4 s2 p0).

    Fields:
        params: the transposed layer.
        phases: the split phases, in `split_phases` order (phi_h-major).
        kernel_size: (kh, kw) of the common sub-kernel.
        dilation: (dh, dw) of the convolution, d / gcd(d, s) per axis.
        padding: (top, left) leading padding, signed: negative crops.
        padding_far: (bottom, right) trailing padding, signed.
        conv_out_size: (V_h, V_w) outputs of the fused convolution.
        step: (s_h, s_w).
        layer_out_size: (OH, OW) of the transposed layer.
        origins: per phase, the layer output of its block's fused output (0, 0)
            (possibly negative: those outputs are dropped).
    """

    params: ConvTranspose2dParams
    phases: tuple[Phase, ...]
    kernel_size: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    padding_far: tuple[int, int]
    conv_out_size: tuple[int, int]
    step: tuple[int, int]
    layer_out_size: tuple[int, int]
    origins: tuple[tuple[int, int], ...]

    @property
    def channels(self):
        """Output channels of the fused convolution: s_h * s_w * C_out."""
        return len(self.phases) * self.params.out_channels

    @property
    def conv_params(self):
        """The fused convolution as a Conv2dParams over `input_window`."""
        return Conv2dParams(self.params.in_channels, self.channels, self.kernel_size,
                            1, 0, self.dilation, self.params.groups)

    @property
    def macs(self):
        """Multiply-accumulates of the fused convolution for one image."""
        (kh, kw), (vh, vw) = self.kernel_size, self.conv_out_size
        return kh * kw * vh * vw * self.channels * (
            self.params.in_channels // self.params.groups)

    def weight(self, w):
        """The stacked conv weight (s_h*s_w*C_out, C_in/g, kh, kw) from the layer's w.

        Each phase's sub-kernel occupies the leading taps of its block; the
        rest of the block is zero.
        """
        groups, c_out = self.params.groups, self.params.out_channels
        c_in_g = self.params.in_channels // groups
        stacked = np.zeros((groups, len(self.phases), c_out // groups, c_in_g,
                            *self.kernel_size), dtype=w.dtype)
        for index, phase in enumerate(self.phases):
            kh, kw = phase.kernel_size
            stacked[:, index, :, :, :kh, :kw] = phase.sub_weight(w).reshape(
                groups, c_out // groups, c_in_g, kh, kw)
        return stacked.reshape(self.channels, c_in_g, *self.kernel_size)

    def bias(self, bias):
        """The stacked bias (s_h*s_w*C_out,) int32, or None without a bias."""
        if bias is None:
            return None
        groups = self.params.groups
        per_group = bias.reshape(groups, 1, -1)
        return np.ascontiguousarray(np.broadcast_to(
            per_group, (groups, len(self.phases), per_group.shape[2]))).reshape(-1)

    def input_window(self, x):
        """The input the fused convolution reads: x padded/cropped on each side."""
        (top, left), (bottom, right) = self.padding, self.padding_far
        _, _, in_h, in_w = x.shape
        return _window(x, -top, in_h + top + bottom, -left, in_w + left + right)

    def depth_to_space(self, z):
        """Interleave the fused result z (N, channels, V_h, V_w) into the layer output."""
        groups, c_out = self.params.groups, self.params.out_channels
        n = z.shape[0]
        out_h, out_w = self.layer_out_size
        blocks = z.reshape(n, groups, len(self.phases), c_out // groups, *z.shape[2:])
        y = np.zeros((n, c_out, out_h, out_w), dtype=z.dtype)
        for index, origin in enumerate(self.origins):
            tile = blocks[:, :, index].reshape(n, c_out, *z.shape[2:])
            _interleave(y, tile, origin, self.step)
        return y


def fused_phases(params, in_h, in_w):
    """The fused (stacked) form of `params` for an in_h x in_w input."""
    s_h, s_w = params.stride
    rows, cols = (_axis_fused(axis, s) for axis, s in
                  zip(_both_axes(params, in_h, in_w), params.stride))
    return FusedPhases(
        params=params,
        phases=tuple(split_phases(params, in_h, in_w)),
        kernel_size=(rows.size, cols.size),
        dilation=(rows.dilation, cols.dilation),
        padding=(-rows.start, -cols.start),
        padding_far=(_far_padding(rows.start, rows.size, rows.dilation, rows.count, in_h),
                     _far_padding(cols.start, cols.size, cols.dilation, cols.count, in_w)),
        conv_out_size=(rows.count, cols.count),
        step=params.stride,
        layer_out_size=params.output_size(in_h, in_w),
        origins=tuple((rows.origins[phi_h], cols.origins[phi_w])
                      for phi_h in range(s_h) for phi_w in range(s_w)))


def run_split_fused_numpy(x, w, bias, params):
    """Transposed convolution as one stacked stride-1 convolution plus depth-to-space.

    Same contract as `conv_transpose2d_reference` and bit-identical to it.
    """
    _check_params(params)
    params.check_tensors(x, w, bias)
    fused = fused_phases(params, x.shape[2], x.shape[3])
    z = conv2d_reference(fused.input_window(x), fused.weight(w), fused.bias(bias),
                         fused.conv_params)
    return fused.depth_to_space(z)


# ---------------------------------------------------------------------------
# Zero-insertion baseline


@dataclass(frozen=True)
class ZeroInsert:
    """A transposed convolution as a stride-1 convolution over the zero-inserted input.

    Per axis: s - 1 zeros between input pixels (length (H - 1)*s + 1), then
    d*(K-1) - p padding before and d*(K-1) - p + op after (negative crops),
    then a stride-1 convolution at dilation d with the kernel rotated by 180
    degrees and its channel axes swapped per group.

    Fields:
        params: the transposed layer.
        inserted_size: (Lh, Lw) of the zero-inserted input, before padding.
        padding: (top, left), signed: negative crops.
        padding_far: (bottom, right), signed.
        kernel_size: (KH, KW), the layer's.
        dilation: (dh, dw), the layer's.
        out_size: (OH, OW), the layer's.
    """

    params: ConvTranspose2dParams
    inserted_size: tuple[int, int]
    padding: tuple[int, int]
    padding_far: tuple[int, int]
    kernel_size: tuple[int, int]
    dilation: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def conv_params(self):
        """The stride-1 convolution as a Conv2dParams over `input`."""
        return Conv2dParams(self.params.in_channels, self.params.out_channels,
                            self.kernel_size, 1, 0, self.dilation, self.params.groups)

    @property
    def macs(self):
        """Multiply-accumulates of the dense convolution for one image."""
        (kh, kw), (oh, ow) = self.kernel_size, self.out_size
        return kh * kw * oh * ow * self.params.out_channels * (
            self.params.in_channels // self.params.groups)

    def weight(self, w):
        """The rotated, channel-swapped conv weight (C_out, C_in/g, KH, KW)."""
        _check_weight(self.params, w)
        return _conv_weight(w[:, :, ::-1, ::-1], self.params.groups)

    def input(self, x):
        """The zero-inserted input, padded (or cropped) on every side."""
        s_h, s_w = self.params.stride
        inserted = np.zeros((*x.shape[:2], *self.inserted_size), dtype=x.dtype)
        inserted[:, :, ::s_h, ::s_w] = x
        (top, left), (bottom, right) = self.padding, self.padding_far
        l_h, l_w = self.inserted_size
        return _window(inserted, -top, l_h + top + bottom, -left, l_w + left + right)


def zero_insert(params, in_h, in_w):
    """The zero-insertion form of `params` for an in_h x in_w input."""
    _check_params(params)
    out_size = params.output_size(in_h, in_w)
    near = tuple(d * (k - 1) - p for k, p, d in
                 zip(params.kernel_size, params.padding, params.dilation))
    return ZeroInsert(
        params=params,
        inserted_size=((in_h - 1) * params.stride[0] + 1, (in_w - 1) * params.stride[1] + 1),
        padding=near,
        padding_far=(near[0] + params.output_padding[0], near[1] + params.output_padding[1]),
        kernel_size=params.kernel_size,
        dilation=params.dilation,
        out_size=out_size)


def run_zero_insert_numpy(x, w, bias, params):
    """Transposed convolution by zero insertion and `conv2d_reference`.

    Same contract as `conv_transpose2d_reference` and bit-identical to it.
    """
    _check_params(params)
    params.check_tensors(x, w, bias)
    form = zero_insert(params, x.shape[2], x.shape[3])
    return conv2d_reference(form.input(x), form.weight(w), bias, form.conv_params)


# ---------------------------------------------------------------------------
# Work comparison


@dataclass(frozen=True)
class MacCounts:
    """Multiply-accumulates of one image through a transposed layer, per form.

    Fields:
        useful: products of an input pixel and a tap that land inside the
            output (`ConvTranspose2dParams.macs`).
        split: sum over phases of sub-kernel taps x phase outputs x
            C_out x C_in/g (includes products with the zero border).
        fused: the stacked convolution's taps x outputs x s_h*s_w*C_out x C_in/g.
        zero_insert: KH*KW x OH*OW x C_out x C_in/g, the dense convolution
            over the zero-inserted input.
    """

    useful: int
    split: int
    fused: int
    zero_insert: int

    @property
    def zero_insert_over_split(self):
        """zero_insert / split: s_h*s_w with d == 1, ignoring borders."""
        return self.zero_insert / self.split

    @property
    def zero_insert_over_fused(self):
        """zero_insert / fused: K^2 / ceil(K/s)^2 for square layers, ignoring borders.

        This is the ratio the split-deconvolution paper quotes (padded
        sub-kernels): 4.0 for K4 s2, about 2.8 for K5 s2, 2.25 for K3 s2.
        """
        return self.zero_insert / self.fused


def mac_counts(params, h, w):
    """MAC counts of the useful work and of each form, for one h x w image."""
    _check_params(params)
    return MacCounts(
        useful=params.macs(h, w),
        split=sum(phase.macs for phase in split_phases(params, h, w)),
        fused=fused_phases(params, h, w).macs,
        zero_insert=zero_insert(params, h, w).macs)
