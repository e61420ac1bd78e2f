"""Layer descriptions with PyTorch semantics: `Conv2d` and `ConvTranspose2d`.

A layer is a frozen dataclass holding the hyper-parameters that PyTorch's
`nn.Conv2d` / `nn.ConvTranspose2d` take (bias is passed with the tensors, not
flagged here). Every spatial parameter accepts an int or a pair and is stored
as a pair `(height, width)`. Construction validates the parameters with
PyTorch's rules; `output_size` adds the rule that the output is not empty.
Every violation raises `ValueError` naming the parameter, the value it got and
the allowed range.

Tensors are NumPy arrays in PyTorch layout: activations `(N, C, H, W)` int8,
weights int8, bias int32 of shape `(C_out,)`.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Conv2dParams", "ConvTranspose2dParams"]

_AXES = ("height", "width")


def _pair(name, value):
    """Normalise an int or a pair of ints to a tuple of two Python ints."""
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def _is_int(value):
    """True for Python and NumPy integers, False for bool and everything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_count(name, value):
    """Validate a channel or group count: an int >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_min(name, pair, minimum):
    """Validate that both entries of a normalised pair are >= `minimum`."""
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum} on both axes, got {pair}")


def _check_input_size(h, w):
    """Validate an input spatial size: two ints >= 1."""
    for axis, value in zip(_AXES, (h, w)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"input {axis} must be an int >= 1, got {value!r}")


def _check_array(name, array, dtype, shape_text, shape_ok):
    """Validate one tensor: a NumPy array of `dtype` whose shape passes `shape_ok`."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise ValueError(f"{name} dtype must be {np.dtype(dtype).name}, got {array.dtype.name}")
    if not shape_ok(array.shape):
        raise ValueError(f"{name} shape must be {shape_text}, got {array.shape}")


class _Layer:
    """Validation and tensor checks shared by both layer kinds."""

    def _validate_common(self):
        """Normalise and validate the fields both layer kinds have."""
        in_channels = _check_count("in_channels", self.in_channels)
        out_channels = _check_count("out_channels", self.out_channels)
        groups = _check_count("groups", self.groups)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"{name} must be a multiple of groups={groups}, got {value}")
        pairs = {name: _pair(name, getattr(self, name))
                 for name in ("kernel_size", "stride", "padding", "dilation")}
        _check_min("kernel_size", pairs["kernel_size"], 1)
        _check_min("stride", pairs["stride"], 1)
        _check_min("padding", pairs["padding"], 0)
        _check_min("dilation", pairs["dilation"], 1)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups), *pairs.items()):
            object.__setattr__(self, name, value)

    def output_size(self, h, w):
        """Output (OH, OW) for an input of h x w; ValueError if either is < 1."""
        _check_input_size(h, w)
        out = tuple(self._output_length(axis, n) for axis, n in enumerate((h, w)))
        for axis, length in zip(_AXES, out):
            if length < 1:
                raise ValueError(
                    f"output {axis} must be >= 1, got {length} for input {(h, w)} "
                    f"with {self!r}")
        return out

    def macs(self, h, w):
        """Useful multiply-accumulates for one image of h x w.

        A product is useful when its input pixel lies inside the input and its
        output pixel inside the output: products that read padding (conv) or
        fall outside the cropped output (transposed) are not counted.
        """
        self.output_size(h, w)
        pairs_h, pairs_w = (self._useful_pairs(axis, n) for axis, n in enumerate((h, w)))
        return pairs_h * pairs_w * self.out_channels * (self.in_channels // self.groups)

    def check_tensors(self, x, w, bias):
        """Validate dtypes and shapes of x, w and bias; return the output shape.

        x must be int8 (N, C_in, H, W) with N, H, W >= 1, w int8 of
        `weight_shape`, bias int32 (C_out,) or None, and the output non-empty.
        Returns (N, C_out, OH, OW).
        """
        _check_array("x", x, np.int8, f"(N, {self.in_channels}, H, W) with N, H, W >= 1",
                     lambda s: len(s) == 4 and s[1] == self.in_channels and min(s) >= 1)
        _check_array("w", w, np.int8, str(self.weight_shape),
                     lambda s: s == self.weight_shape)
        if bias is not None:
            _check_array("bias", bias, np.int32, str((self.out_channels,)),
                         lambda s: s == (self.out_channels,))
        return (x.shape[0], self.out_channels, *self.output_size(x.shape[2], x.shape[3]))


@dataclass(frozen=True)
class Conv2dParams(_Layer):
    """A 2-D convolution with PyTorch `nn.Conv2d` semantics (argument order too).

    Per axis: O = floor((H + 2p - d*(K-1) - 1) / s) + 1.
    Weight shape (C_out, C_in/groups, KH, KW).
    """

    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1

    def __post_init__(self):
        self._validate_common()

    @property
    def weight_shape(self):
        """(C_out, C_in/groups, KH, KW)."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def _output_length(self, axis, n):
        """Output length on one axis for input length n (may be < 1)."""
        span = self.dilation[axis] * (self.kernel_size[axis] - 1) + 1
        return (n + 2 * self.padding[axis] - span) // self.stride[axis] + 1

    def _useful_pairs(self, axis, n):
        """Count (output, tap) pairs on one axis whose input index is in [0, n)."""
        outputs = np.arange(self._output_length(axis, n))
        taps = np.arange(self.kernel_size[axis])
        index = (outputs[:, None] * self.stride[axis] + taps[None, :] * self.dilation[axis]
                 - self.padding[axis])
        return int(np.count_nonzero((index >= 0) & (index < n)))


@dataclass(frozen=True)
class ConvTranspose2dParams(_Layer):
    """A 2-D transposed convolution with PyTorch `nn.ConvTranspose2d` semantics.

    Argument order follows PyTorch: ..., padding, output_padding, groups, dilation.
    Per axis: O = (H - 1)*s - 2p + d*(K - 1) + op + 1, with
    0 <= op < max(s, d); y[i*s + k*d - p] += x[i] * w[k].
    Weight shape (C_in, C_out/groups, KH, KW).
    """

    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    output_padding: int | tuple[int, int] = 0
    groups: int = 1
    dilation: int | tuple[int, int] = 1

    def __post_init__(self):
        self._validate_common()
        output_padding = _pair("output_padding", self.output_padding)
        for axis, name in enumerate(_AXES):
            limit = max(self.stride[axis], self.dilation[axis])
            if not 0 <= output_padding[axis] < limit:
                raise ValueError(
                    f"output_padding must be in 0..{limit - 1} on the {name} axis "
                    f"(below max(stride, dilation) = {limit}), got {output_padding}")
        object.__setattr__(self, "output_padding", output_padding)

    @property
    def weight_shape(self):
        """(C_in, C_out/groups, KH, KW)."""
        return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)

    def _output_length(self, axis, n):
        """Output length on one axis for input length n (may be < 1)."""
        return ((n - 1) * self.stride[axis] - 2 * self.padding[axis]
                + self.dilation[axis] * (self.kernel_size[axis] - 1)
                + self.output_padding[axis] + 1)

    def _useful_pairs(self, axis, n):
        """Count (input, tap) pairs on one axis whose output index is in [0, O)."""
        inputs = np.arange(n)
        taps = np.arange(self.kernel_size[axis])
        index = (inputs[:, None] * self.stride[axis] + taps[None, :] * self.dilation[axis]
                 - self.padding[axis])
        return int(np.count_nonzero((index >= 0) & (index < self._output_length(axis, n))))
