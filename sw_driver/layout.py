"""The driver's device layouts (docs/architecture.md, "Memory layout").

Activations are "blocked NHWC": per pixel, the channel blocks one after
another, each one DMA element of `elem_bytes` bytes holding `block` channels
(R for inputs, C for outputs) followed by zero padding. Images follow each
other. Weights and parameters use the element layouts of the hardware, with
grouped convolutions expanded to dense, block-diagonal weights.

All functions return or take flat NumPy uint8 arrays of device bytes.
"""

from dataclasses import dataclass
import math

import numpy as np

__all__ = ["BlockedLayout", "input_layout", "output_layout", "pack_blocked", "unpack_blocked",
           "expand_groups", "pack_weights", "unpack_weights", "pack_params", "unpack_params"]

_DEVICE_DTYPES = {"int8": np.dtype("i1"), "int32": np.dtype("<i4")}   # little endian


@dataclass(frozen=True)
class BlockedLayout:
    """Geometry of an (N, C, H, W) tensor in blocked NHWC.

    `block` channels of type `dtype` ("int8" or "int32") fill the first bytes
    of an element of `elem_bytes` bytes; the pitches are the byte steps of
    the descriptor's ELEM/ROW/BLK_PITCH fields, `image_pitch` the step between
    images.
    """

    batch: int
    channels: int
    height: int
    width: int
    block: int
    dtype: str
    elem_bytes: int

    def __post_init__(self):
        if self.dtype not in _DEVICE_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DEVICE_DTYPES)}, "
                             f"not {self.dtype!r}")
        if self.block * _DEVICE_DTYPES[self.dtype].itemsize > self.elem_bytes:
            raise ValueError(f"{self.block} {self.dtype} channels do not fit an element "
                             f"of {self.elem_bytes} bytes")

    @property
    def blocks(self):
        """Channel blocks per pixel (the last one padded with zero channels)."""
        return math.ceil(self.channels / self.block)

    @property
    def blk_pitch(self):
        return self.elem_bytes

    @property
    def elem_pitch(self):
        return self.blocks * self.elem_bytes

    @property
    def row_pitch(self):
        return self.width * self.elem_pitch

    @property
    def image_pitch(self):
        return self.height * self.row_pitch

    @property
    def nbytes(self):
        return self.batch * self.image_pitch


def input_layout(cfg, batch, channels, height, width):
    """Blocked NHWC of int8 activations read by the accelerator: blocks of R channels."""
    return BlockedLayout(batch, channels, height, width, cfg.rows, "int8",
                         cfg.in_elem_words * cfg.bus_bytes)


def output_layout(cfg, batch, channels, height, width, requant):
    """Blocked NHWC of outputs: blocks of C channels, int8 when `requant`, else int32."""
    return BlockedLayout(batch, channels, height, width, cfg.cols,
                         "int8" if requant else "int32",
                         cfg.out_elem_words(requant) * cfg.bus_bytes)


def pack_blocked(x, layout):
    """Device bytes of the (N, C, H, W) array `x` in `layout` (padding bytes zero)."""
    shape = (layout.batch, layout.channels, layout.height, layout.width)
    if not isinstance(x, np.ndarray) or x.shape != shape or x.dtype != np.dtype(layout.dtype):
        raise ValueError(f"x must be a {layout.dtype} array of shape {shape}, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    padded = np.zeros((layout.batch, layout.blocks * layout.block, layout.height, layout.width),
                      dtype=_DEVICE_DTYPES[layout.dtype])
    padded[:, :layout.channels] = x
    blocked = padded.reshape(layout.batch, layout.blocks, layout.block,
                             layout.height, layout.width).transpose(0, 3, 4, 1, 2)
    values = np.ascontiguousarray(blocked).view(np.uint8)
    elements = np.zeros(values.shape[:-1] + (layout.elem_bytes,), dtype=np.uint8)
    elements[..., :values.shape[-1]] = values
    return elements.ravel()


def unpack_blocked(data, layout):
    """The (N, C, H, W) array held by the device bytes `data` in `layout`."""
    data = np.frombuffer(data, dtype=np.uint8)
    if data.size != layout.nbytes:
        raise ValueError(f"expected {layout.nbytes} bytes, got {data.size}")
    dtype = _DEVICE_DTYPES[layout.dtype]
    elements = data.reshape(layout.batch, layout.height, layout.width, layout.blocks,
                            layout.elem_bytes)
    values = np.ascontiguousarray(elements[..., :layout.block * dtype.itemsize]).view(dtype)
    channels = values.transpose(0, 3, 4, 1, 2).reshape(
        layout.batch, layout.blocks * layout.block, layout.height, layout.width)
    return channels[:, :layout.channels].astype(np.dtype(layout.dtype))


def expand_groups(w, groups, out_range, in_range):
    """Dense int8 weights of a grouped convolution for the given channel ranges.

    `w` is (C_out, C_in/groups, KH, KW). Returns (len(out_range), len(in_range),
    KH, KW) with entry [o, i] = w[co, ci - g*C_in/groups] when output channel
    co = out_range[o] and input channel ci = in_range[i] are both in group g,
    and zero otherwise, including channels beyond C_out or C_in (padding).
    """
    out_channels, in_per_group = w.shape[:2]
    out_per_group = out_channels // groups
    co = np.asarray(out_range, dtype=np.int64)[:, None]
    ci = np.asarray(in_range, dtype=np.int64)[None, :]
    group = co // out_per_group
    local = ci - group * in_per_group
    inside = (co < out_channels) & (local >= 0) & (local < in_per_group)
    picked = w[np.clip(co, 0, out_channels - 1), np.clip(local, 0, in_per_group - 1)]
    return np.where(inside[:, :, None, None], picked, np.int8(0)).astype(np.int8)


def pack_weights(cfg, w, groups, cob_range, cib_range):
    """Weight elements for output blocks `cob_range` and input blocks `cib_range`.

    Elements in the descriptor's order (cob, cib, kh, kw), block indices
    relative to the ranges' starts; byte r*C + c of an element is the weight
    from input channel cib*R + r to output channel cob*C + c.
    """
    rows, cols = cfg.rows, cfg.cols
    kh, kw = w.shape[2:]
    dense = expand_groups(w, groups,
                          range(cob_range.start * cols, cob_range.stop * cols),
                          range(cib_range.start * rows, cib_range.stop * rows))
    blocks = dense.reshape(len(cob_range), cols, len(cib_range), rows, kh, kw)
    matrices = blocks.transpose(0, 2, 4, 5, 3, 1).reshape(-1, rows * cols)
    elements = np.zeros((matrices.shape[0], cfg.w_elem_words * cfg.bus_bytes), dtype=np.uint8)
    elements[:, :rows * cols] = matrices.view(np.uint8)
    return elements.ravel()


def unpack_weights(cfg, data, co_blocks, ci_blocks, kh, kw):
    """Dense (co_blocks*C, ci_blocks*R, KH, KW) int8 weights from weight elements."""
    rows, cols = cfg.rows, cfg.cols
    elements = np.frombuffer(data, dtype=np.uint8).reshape(-1, cfg.w_elem_words * cfg.bus_bytes)
    if elements.shape[0] != co_blocks * ci_blocks * kh * kw:
        raise ValueError(f"expected {co_blocks * ci_blocks * kh * kw} weight elements, "
                         f"got {elements.shape[0]}")
    matrices = elements[:, :rows * cols].view(np.int8)
    blocks = matrices.reshape(co_blocks, ci_blocks, kh, kw, rows, cols)
    return np.ascontiguousarray(blocks.transpose(0, 5, 1, 4, 2, 3)).reshape(
        co_blocks * cols, ci_blocks * rows, kh, kw)


def pack_params(cfg, bias, multiplier, shift):
    """Parameter elements for all output blocks: int32 bias[C], multiplier[C], shift[C].

    The three arrays have one int32 value per output channel; channels of the
    last block beyond them are zero.
    """
    cols = cfg.cols
    channels = len(bias)
    blocks = math.ceil(channels / cols)
    table = np.zeros((3, blocks * cols), dtype="<i4")
    for index, values in enumerate((bias, multiplier, shift)):
        table[index, :channels] = values
    per_block = table.reshape(3, blocks, cols).transpose(1, 0, 2).reshape(blocks, 3 * cols)
    elements = np.zeros((blocks, cfg.p_elem_words * cfg.bus_bytes), dtype=np.uint8)
    elements[:, :12 * cols] = np.ascontiguousarray(per_block).view(np.uint8)
    return elements.ravel()


def unpack_params(cfg, data, co_blocks):
    """(bias, multiplier, shift) int32 arrays of co_blocks*C channels from parameter elements."""
    cols = cfg.cols
    elements = np.frombuffer(data, dtype=np.uint8).reshape(co_blocks,
                                                           cfg.p_elem_words * cfg.bus_bytes)
    table = np.ascontiguousarray(elements[:, :12 * cols]).view("<i4").reshape(co_blocks, 3, cols)
    return tuple(table[:, index].reshape(-1).astype(np.int32) for index in range(3))
