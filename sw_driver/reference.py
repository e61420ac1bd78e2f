"""Golden references: int8 convolution and transposed convolution in NumPy.

Both follow PyTorch semantics bit-exactly on integers: int8 inputs and weights,
int32 bias, products accumulated in int64 and the sum (bias included) wrapped
to int32 modulo 2^32, as the accelerator's int32 accumulators do. The two
functions are written from their definitions and share no code with the split
decomposition (`sw_driver.split`) they are used to check.
"""

import numpy as np

from .layers import Conv2dParams, ConvTranspose2dParams

__all__ = ["conv2d_reference", "conv_transpose2d_reference"]


def _check_params(params, kind):
    """Refuse a params object of the wrong layer kind."""
    if not isinstance(params, kind):
        raise ValueError(f"params must be a {kind.__name__}, got {type(params).__name__}")


def _add_bias_and_wrap(acc, bias):
    """Add the per-channel bias to an int64 (N, C, H, W) sum and wrap it to int32."""
    if bias is not None:
        acc += bias.astype(np.int64)[None, :, None, None]
    return acc.astype(np.int32)


def conv2d_reference(x, w, bias, params):
    """Direct 2-D convolution (cross-correlation, as PyTorch's `conv2d`).

    y[n, co, oy, ox] = bias[co] + sum over ci in co's group, kh, kw of
        x[n, ci, oy*s_h + kh*d_h - p_h, ox*s_w + kw*d_w - p_w] * w[co, ci', kh, kw]
    with x zero outside the input. x int8 (N, C_in, H, W), w int8
    (C_out, C_in/groups, KH, KW), bias int32 (C_out,) or None. Returns int32
    (N, C_out, OH, OW).
    """
    _check_params(params, Conv2dParams)
    n, c_out, out_h, out_w = params.check_tensors(x, w, bias)
    groups = params.groups
    (s_h, s_w), (d_h, d_w), (p_h, p_w) = params.stride, params.dilation, params.padding
    c_in_g = params.in_channels // groups
    in_h, in_w = x.shape[2:]
    padded = np.zeros((n, groups, c_in_g, in_h + 2 * p_h, in_w + 2 * p_w), dtype=np.int64)
    padded[..., p_h: p_h + in_h, p_w: p_w + in_w] = x.reshape(n, groups, c_in_g, in_h, in_w)
    w_grouped = w.astype(np.int64).reshape(groups, c_out // groups, c_in_g, *w.shape[2:])
    acc = np.zeros((n, groups, c_out // groups, out_h, out_w), dtype=np.int64)
    for kh in range(params.kernel_size[0]):
        for kw in range(params.kernel_size[1]):
            window = padded[:, :, :,
                            kh * d_h: kh * d_h + (out_h - 1) * s_h + 1: s_h,
                            kw * d_w: kw * d_w + (out_w - 1) * s_w + 1: s_w]
            acc += np.einsum("ngchw,goc->ngohw", window, w_grouped[..., kh, kw])
    return _add_bias_and_wrap(acc.reshape(n, c_out, out_h, out_w), bias)


def conv_transpose2d_reference(x, w, bias, params):
    """Transposed 2-D convolution from its scatter definition.

    Every input pixel i scatters x[i] * w[k] to output o = i*s + k*d - p (per
    axis); contributions outside [0, O) are dropped:
    y[n, co, o] = bias[co] + sum over ci in co's group and (i, k) with
    i*s + k*d - p == o of x[n, ci, i] * w[ci, co', k].
    x int8 (N, C_in, H, W), w int8 (C_in, C_out/groups, KH, KW), bias int32
    (C_out,) or None. Returns int32 (N, C_out, OH, OW).
    """
    _check_params(params, ConvTranspose2dParams)
    n, c_out, out_h, out_w = params.check_tensors(x, w, bias)
    groups = params.groups
    _, _, in_h, in_w = x.shape
    (s_h, s_w), (d_h, d_w), (p_h, p_w) = params.stride, params.dilation, params.padding
    (k_h, k_w), (op_h, op_w) = params.kernel_size, params.output_padding
    c_in_g = params.in_channels // groups
    # Uncropped canvas: canvas index i*s + k*d is output index i*s + k*d - p.
    # It must also reach output index O - 1, i.e. canvas index O - 1 + p.
    canvas_h = (in_h - 1) * s_h + d_h * (k_h - 1) + 1 + max(0, op_h - p_h)
    canvas_w = (in_w - 1) * s_w + d_w * (k_w - 1) + 1 + max(0, op_w - p_w)
    canvas = np.zeros((n, groups, c_out // groups, canvas_h, canvas_w), dtype=np.int64)
    x_grouped = x.astype(np.int64).reshape(n, groups, c_in_g, in_h, in_w)
    w_grouped = w.astype(np.int64).reshape(groups, c_in_g, c_out // groups, k_h, k_w)
    for kh in range(k_h):
        for kw in range(k_w):
            canvas[..., kh * d_h: kh * d_h + (in_h - 1) * s_h + 1: s_h,
                   kw * d_w: kw * d_w + (in_w - 1) * s_w + 1: s_w] += np.einsum(
                "ngchw,gco->ngohw", x_grouped, w_grouped[..., kh, kw])
    out = canvas[..., p_h: p_h + out_h, p_w: p_w + out_w]
    return _add_bias_and_wrap(out.reshape(n, c_out, out_h, out_w), bias)
