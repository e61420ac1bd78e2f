"""Layers as programs of convolution passes the hardware runs as they are.

A `ConvPass` is one dense convolution (no dilation) reading a strided view of
the uploaded input and writing a strided view of the output tensor: the
hardware's descriptor pitches are the tensor's pitches times the view's
steps. Every layer the driver runs becomes a `Program`:

- Conv2d: one pass; dilation d splits into d*d (or fewer, with stride) dense
  passes over sub-sampled inputs and outputs ("space to batch").
- ConvTranspose2d, `split`: one pass per output phase, each a stride-1
  convolution of the original input with the phase's exact sub-kernel,
  storing every s-th output pixel; phases without taps store bias only.
- ConvTranspose2d, `split-fused`: one convolution whose output channels are
  all phases' sub-kernels stacked; its output goes to a scratch tensor whose
  channel blocks mix phases, so the depth-to-space happens when the result is
  unpacked on the host.
- ConvTranspose2d, `zero-insert`: the usual baseline, one stride-1
  convolution over the zero-inserted input with the rotated kernel.
"""

from dataclasses import dataclass, field
from math import gcd, ceil
from typing import Callable

import numpy as np

from .layers import Conv2dParams, ConvTranspose2dParams
from .split import split_phases, fused_phases, zero_insert

__all__ = ["Axis", "ConvPass", "Program", "dense_passes", "conv2d_program",
           "conv_transpose2d_program", "METHODS"]

METHODS = ("split", "split-fused", "zero-insert")


@dataclass(frozen=True)
class Axis:
    """Tensor indices start, start + step, ... (count of them) along one axis."""

    start: int
    step: int
    count: int

    def sub(self, offset, step):
        """Indices offset, offset + step, ... of this axis, as an Axis of the tensor."""
        count = max(0, ceil((self.count - offset) / step))
        return Axis(self.start + self.step * offset, self.step * step, count)


@dataclass(frozen=True)
class ConvPass:
    """out[out_rows[oy], out_cols[ox]] = conv(in restricted to in_rows x in_cols)[oy, ox].

    `weight` is a conv weight (C_out, C_in/groups, KH, KW); padding is signed
    (negative crops) and relative to the view; the pass computes
    out_rows.count x out_cols.count outputs.
    """

    weight: np.ndarray
    groups: int
    stride: tuple
    padding: tuple
    dilation: tuple
    in_rows: Axis
    in_cols: Axis
    out_rows: Axis
    out_cols: Axis

    @property
    def kernel_size(self):
        return self.weight.shape[2:]


def _split_axis(kernel, stride, pad, dilation, view_in, view_out):
    """Dense sub-problems of one axis of a dilated convolution.

    y[o] = sum_k x[o*s + k*d - p]; with g = gcd(s, d), m = d/g and o = m*u + a:
    x index = d*(u*(s/g) + k + q) + r, r = (a*s - p) mod d, q = (a*s - p) // d.
    So outputs a, a+m, ... come from a dense convolution with stride s/g and
    padding -q over inputs r, r+d, ...
    Yields (stride, padding, input axis, output axis).
    """
    g = gcd(stride, dilation)
    m = dilation // g
    for a in range(m):
        out_axis = view_out.sub(a, m)
        if out_axis.count == 0:
            continue
        q, r = divmod(a * stride - pad, dilation)
        yield stride // g, -q, view_in.sub(r, dilation), out_axis


def dense_passes(conv_pass):
    """The pass as dense passes (dilation 1); inputs that sub-sample to nothing
    become bias-only passes."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (conv_pass.kernel_size, conv_pass.stride,
                                              conv_pass.padding, conv_pass.dilation)
    passes = []
    for stride_h, pad_h, in_rows, out_rows in _split_axis(kh, sh, ph, dh, conv_pass.in_rows,
                                                           conv_pass.out_rows):
        for stride_w, pad_w, in_cols, out_cols in _split_axis(kw, sw, pw, dw, conv_pass.in_cols,
                                                               conv_pass.out_cols):
            dense = ConvPass(conv_pass.weight, conv_pass.groups, (stride_h, stride_w),
                             (pad_h, pad_w), (1, 1), in_rows, in_cols, out_rows, out_cols)
            if in_rows.count == 0 or in_cols.count == 0:
                dense = _bias_only(conv_pass.weight.shape[:2], conv_pass.groups,
                                   out_rows, out_cols)
            passes.append(dense)
    return passes


def _bias_only(weight_channels, groups, out_rows, out_cols):
    """A pass whose outputs are the bias alone: a 1x1 zero kernel over a one-pixel
    input view, padded so that every read falls outside it and nothing is loaded."""
    return ConvPass(np.zeros((*weight_channels, 1, 1), dtype=np.int8), groups, (1, 1),
                    (-1, -1), (1, 1), Axis(0, 1, 1), Axis(0, 1, 1), out_rows, out_cols)


@dataclass
class Program:
    """A layer as passes over one uploaded input and one output tensor.

    `input` is the int8 (N, C, H, W) array to upload; passes write the output
    tensor of `out_channels` x `out_size`; `bias`, `multiplier` and `shift`
    are per output-tensor channel; `finish` turns the downloaded output tensor
    into the layer's result.
    """

    input: np.ndarray
    out_channels: int
    out_size: tuple
    passes: list
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    finish: Callable = field(default=lambda y: y)


def _whole(length):
    return Axis(0, 1, length)


def conv2d_program(x, w, params, bias, multiplier, shift):
    """Conv2d (a Conv2dParams) as a Program."""
    _, _, in_h, in_w = x.shape
    out_h, out_w = params.output_size(in_h, in_w)
    conv_pass = ConvPass(w, params.groups, params.stride, params.padding, params.dilation,
                         _whole(in_h), _whole(in_w), _whole(out_h), _whole(out_w))
    return Program(x, params.out_channels, (out_h, out_w), dense_passes(conv_pass),
                   bias, multiplier, shift)


def conv_transpose2d_program(x, w, params, bias, multiplier, shift, method):
    """ConvTranspose2d (a ConvTranspose2dParams) as a Program of `method`."""
    _, _, in_h, in_w = x.shape
    out_h, out_w = params.output_size(in_h, in_w)
    if method == "split":
        passes = []
        for phase in split_phases(params, in_h, in_w):
            out_rows = Axis(phase.origin[0], phase.step[0], phase.out_size[0])
            out_cols = Axis(phase.origin[1], phase.step[1], phase.out_size[1])
            if out_rows.count == 0 or out_cols.count == 0:
                continue
            if not phase.has_taps:
                passes.append(_bias_only((params.out_channels, params.in_channels // params.groups),
                                         params.groups, out_rows, out_cols))
                continue
            passes += dense_passes(ConvPass(phase.sub_weight(w), params.groups, (1, 1),
                                            phase.padding, phase.dilation, _whole(in_h),
                                            _whole(in_w), out_rows, out_cols))
        return Program(x, params.out_channels, (out_h, out_w), passes, bias, multiplier, shift)
    if method == "split-fused":
        fused = fused_phases(params, in_h, in_w)
        v_h, v_w = fused.conv_out_size
        conv_pass = ConvPass(fused.weight(w), params.groups, (1, 1), fused.padding,
                             fused.dilation, _whole(in_h), _whole(in_w), _whole(v_h), _whole(v_w))
        return Program(x, fused.channels, (v_h, v_w), dense_passes(conv_pass),
                       fused.bias(bias), fused.bias(multiplier), fused.bias(shift),
                       fused.depth_to_space)
    if method == "zero-insert":
        baseline = zero_insert(params, in_h, in_w)
        s_h, s_w = params.stride
        inserted = np.zeros((*x.shape[:2], *baseline.inserted_size), dtype=np.int8)
        inserted[:, :, ::s_h, ::s_w] = x
        l_h, l_w = baseline.inserted_size
        conv_pass = ConvPass(baseline.weight(w), params.groups, (1, 1), baseline.padding,
                             baseline.dilation, _whole(l_h), _whole(l_w),
                             _whole(out_h), _whole(out_w))
        return Program(inserted, params.out_channels, (out_h, out_w), dense_passes(conv_pass),
                       bias, multiplier, shift)
    raise ValueError(f"method must be one of {', '.join(METHODS)} or auto, not {method!r}")
