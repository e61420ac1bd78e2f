"""Maps a Conv2d layer to descriptors and the memory regions they use.

`plan_conv2d` checks that the hardware can take the layer (every refusal is a
ValueError naming the parameter and its allowed range, raised before anything
touches the device), lays out the four memory regions (input, weights,
params, output) and chooses the tile size with the cycle model.

Grouped convolutions: for each output-channel block the input-channel blocks
it needs form a contiguous range; consecutive output blocks with the same
range share one descriptor whose weights are dense and block-diagonal (zero
between groups). A batch gets one descriptor set per image.
"""

from dataclasses import dataclass
import math

from hw.config import AccelConfig

from .cycles import DEFAULT_TIMING, simulate
from .layers import Conv2dParams
from .layout import BlockedLayout, input_layout, output_layout

__all__ = ["BlockRange", "ConvPlan", "plan_conv2d", "tile_limit", "choose_tile",
           "FIELD_MAX", "PAD_MAX", "WHOLE_ROW_MARGIN", "SPLIT_CANDIDATES"]

FIELD_MAX = (1 << 16) - 1   # largest IN_H, IN_W, OUT_H, OUT_W, CI/CO_BLOCKS, TILE_*
PAD_MAX = (1 << 15) - 1     # largest PAD_T, PAD_L (16-bit signed)
WHOLE_ROW_MARGIN = 0.02     # cycle excess a whole-row tile may have and still win
SPLIT_CANDIDATES = 8        # tile widths, and heights per width, the search tries


@dataclass(frozen=True)
class BlockRange:
    """Output-channel blocks [cob_start, cob_stop) reading input blocks [cib_start, cib_stop).

    `weight_offset` is the byte offset of its weight elements in the weights
    region; `tile_h` x `tile_w` its tile size.
    """

    cob_start: int
    cob_stop: int
    cib_start: int
    cib_stop: int
    weight_offset: int
    tile_h: int
    tile_w: int

    @property
    def co_blocks(self):
        return self.cob_stop - self.cob_start

    @property
    def ci_blocks(self):
        return self.cib_stop - self.cib_start


@dataclass(frozen=True)
class ConvPlan:
    """Descriptors and memory regions of one Conv2d on one accelerator configuration."""

    cfg: AccelConfig
    conv: Conv2dParams
    batch: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    requant: bool
    input: BlockedLayout
    output: BlockedLayout
    block_ranges: tuple
    weights_bytes: int
    params_bytes: int

    @property
    def regions(self):
        """Bytes of each memory region by name: input, weights, params, output."""
        return {"input": self.input.nbytes, "weights": self.weights_bytes,
                "params": self.params_bytes, "output": self.output.nbytes}

    @property
    def total_bytes(self):
        """Memory the regions take when each starts on a bus-word boundary."""
        bus = self.cfg.bus_bytes
        return sum(-(-size // bus) * bus for size in self.regions.values())

    def descriptors(self, bases, zero_point=0, act_min=-128, act_max=127):
        """Descriptor field values (signed fields as Python ints), in run order.

        `bases` maps each region name to its device address. `zero_point`,
        `act_min` and `act_max` are the int8 output fields (OUT_ZP, ACT_MIN,
        ACT_MAX), used when `requant`.
        """
        p_bytes = self.cfg.p_elem_words * self.cfg.bus_bytes
        (kh, kw), (sh, sw), (pad_t, pad_l) = (self.conv.kernel_size, self.conv.stride,
                                              self.conv.padding)
        result = []
        for image in range(self.batch):
            for blocks in self.block_ranges:
                result.append({
                    "IN_BASE": (bases["input"] + image * self.input.image_pitch
                                + blocks.cib_start * self.input.blk_pitch),
                    "IN_ELEM_PITCH": self.input.elem_pitch,
                    "IN_ROW_PITCH": self.input.row_pitch,
                    "IN_BLK_PITCH": self.input.blk_pitch,
                    "OUT_BASE": (bases["output"] + image * self.output.image_pitch
                                 + blocks.cob_start * self.output.blk_pitch),
                    "OUT_ELEM_PITCH": self.output.elem_pitch,
                    "OUT_ROW_PITCH": self.output.row_pitch,
                    "OUT_BLK_PITCH": self.output.blk_pitch,
                    "W_BASE": bases["weights"] + blocks.weight_offset,
                    "P_BASE": bases["params"] + blocks.cob_start * p_bytes,
                    "IN_H": self.in_h, "IN_W": self.in_w,
                    "OUT_H": self.out_h, "OUT_W": self.out_w,
                    "CI_BLOCKS": blocks.ci_blocks, "CO_BLOCKS": blocks.co_blocks,
                    "KH": kh, "KW": kw, "SH": sh, "SW": sw,
                    "PAD_T": pad_t, "PAD_L": pad_l,
                    "TILE_H": blocks.tile_h, "TILE_W": blocks.tile_w,
                    "MODE": int(self.requant),
                    "OUT_ZP": zero_point if self.requant else 0,
                    "ACT_MIN": act_min if self.requant else -128,
                    "ACT_MAX": act_max if self.requant else 127,
                })
        return result


def tile_limit(cfg, tile_w, desc):
    """Largest TILE_H for `tile_w` within acc_depth, in_depth and OUT_H (0 if none)."""
    window_w = (tile_w - 1) * desc["SW"] + desc["KW"]
    by_window = (cfg.in_depth // window_w - desc["KH"]) // desc["SH"] + 1
    return max(0, min(desc["OUT_H"], cfg.acc_depth // tile_w, by_window))


def _even_splits(length, largest, count):
    """Up to `count` distinct tile lengths ceil(length / k) <= largest, longest first."""
    lengths = []
    splits = math.ceil(length / largest)
    while len(lengths) < count and (not lengths or lengths[-1] > 1):
        size = math.ceil(length / splits)
        if not lengths or size < lengths[-1]:
            lengths.append(size)
        splits += 1
    return lengths


def choose_tile(cfg, desc, timing=DEFAULT_TIMING):
    """(TILE_H, TILE_W) with the fewest modelled cycles for descriptor fields `desc`.

    `desc` holds every field `sw_driver.cycles.simulate` reads except the
    tile size. Candidates: even splits of the output, from the widest
    allowed tile width (whole rows when they fit) down, each with even splits
    of the output rows from its tallest allowed height down (SPLIT_CANDIDATES
    of each). Ties go to wider, then taller tiles. Whole-row tiles win unless
    a narrower tile saves more than WHOLE_ROW_MARGIN of the cycles: the cycle
    model does not price DMA bursts, and whole rows make longer ones. The
    layer must admit a 1x1 tile.
    """
    # The widest tile with one row: KH * ((w-1)*SW + KW) <= in_depth, w <= acc_depth.
    widest = min(desc["OUT_W"], cfg.acc_depth,
                 (cfg.in_depth // desc["KH"] - desc["KW"]) // desc["SW"] + 1)
    candidates = []
    for width in _even_splits(desc["OUT_W"], widest, SPLIT_CANDIDATES):
        tallest = tile_limit(cfg, width, desc)
        for height in _even_splits(desc["OUT_H"], tallest, SPLIT_CANDIDATES):
            cycles = simulate(cfg, {**desc, "TILE_H": height, "TILE_W": width}, timing)["CYCLES"]
            candidates.append((cycles, -width, -height))
    best = min(candidates)
    whole_rows = [candidate for candidate in candidates if -candidate[1] == desc["OUT_W"]]
    if whole_rows and min(whole_rows)[0] <= best[0] * (1 + WHOLE_ROW_MARGIN):
        best = min(whole_rows)
    return -best[2], -best[1]

def _check_limit(name, value, low, high, meaning):
    """ValueError unless every entry of the int or pair `value` is in low..high."""
    for entry in (value if isinstance(value, tuple) else (value,)):
        if not low <= entry <= high:
            raise ValueError(f"{name} {value} is not supported: {meaning} allows "
                             f"{low}..{high}")


def _block_ranges(cfg, conv):
    """(cob_start, cob_stop, cib_start, cib_stop) of the layer's descriptors, in order."""
    rows, cols = cfg.rows, cfg.cols
    out_per_group = conv.out_channels // conv.groups
    in_per_group = conv.in_channels // conv.groups
    ranges = []
    for cob in range(math.ceil(conv.out_channels / cols)):
        first_group = cob * cols // out_per_group
        last_group = (min(conv.out_channels, (cob + 1) * cols) - 1) // out_per_group
        cibs = (first_group * in_per_group // rows,
                ((last_group + 1) * in_per_group - 1) // rows + 1)
        if ranges and ranges[-1][2:] == cibs:
            ranges[-1] = (ranges[-1][0], cob + 1, *cibs)
        else:
            ranges.append((cob, cob + 1, *cibs))
    return ranges


def plan_conv2d(cfg, conv, batch, in_h, in_w, *, requant, capacity, timing=DEFAULT_TIMING):
    """Plan `conv` (a Conv2dParams) on `batch` images of in_h x in_w.

    `requant` selects int8 outputs (MODE 1) over int32 (MODE 0); `capacity`
    is the accelerator memory available for the four regions, in bytes.
    Raises ValueError naming the parameter when the hardware cannot take the
    layer: dilation other than 1, kernel_size beyond cfg.kernel_max, stride
    beyond cfg.stride_max, a one-pixel input window beyond cfg.in_depth,
    sizes beyond the descriptor fields, or too little memory.
    """
    if not isinstance(conv, Conv2dParams):
        raise ValueError(f"conv must be a Conv2dParams, not {type(conv).__name__}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, not {batch!r}")
    if conv.dilation != (1, 1):
        raise ValueError(f"dilation {conv.dilation} is not supported: the accelerator has "
                         f"no dilation, only dilation=1 is allowed")
    _check_limit("kernel_size", conv.kernel_size, 1, cfg.kernel_max,
                 f"the accelerator's kernel_max {cfg.kernel_max}")
    _check_limit("stride", conv.stride, 1, cfg.stride_max,
                 f"the accelerator's stride_max {cfg.stride_max}")
    out_h, out_w = conv.output_size(in_h, in_w)
    _check_limit("padding", conv.padding, 0, PAD_MAX, "the 16-bit signed PAD_T/PAD_L field")
    _check_limit("input size", (in_h, in_w), 1, FIELD_MAX, "the 16-bit IN_H/IN_W field")
    _check_limit("output size", (out_h, out_w), 1, FIELD_MAX, "the 16-bit OUT_H/OUT_W field")
    _check_limit("in_channels", conv.in_channels, 1, FIELD_MAX * cfg.rows,
                 f"the 16-bit CI_BLOCKS field with {cfg.rows} channels per block")
    _check_limit("out_channels", conv.out_channels, 1, FIELD_MAX * cfg.cols,
                 f"the 16-bit CO_BLOCKS field with {cfg.cols} channels per block")
    kh, kw = conv.kernel_size
    if kh * kw > cfg.in_depth:
        raise ValueError(f"kernel_size {conv.kernel_size} is not supported: one output "
                         f"pixel reads a {kh}x{kw} input window, the accelerator's in_depth "
                         f"{cfg.in_depth} allows at most {cfg.in_depth} elements")

    geometry = {"IN_H": in_h, "IN_W": in_w, "OUT_H": out_h, "OUT_W": out_w,
                "KH": kh, "KW": kw, "SH": conv.stride[0], "SW": conv.stride[1],
                "PAD_T": conv.padding[0], "PAD_L": conv.padding[1], "MODE": int(requant)}
    w_elem_bytes = cfg.w_elem_words * cfg.bus_bytes
    tiles, block_ranges, weights_bytes = {}, [], 0
    for cob_start, cob_stop, cib_start, cib_stop in _block_ranges(cfg, conv):
        shape = (cob_stop - cob_start, cib_stop - cib_start)
        if shape not in tiles:
            tiles[shape] = choose_tile(cfg, {**geometry, "CO_BLOCKS": shape[0],
                                             "CI_BLOCKS": shape[1]}, timing)
        block_ranges.append(BlockRange(cob_start, cob_stop, cib_start, cib_stop,
                                       weights_bytes, *tiles[shape]))
        weights_bytes += shape[0] * shape[1] * kh * kw * w_elem_bytes

    plan = ConvPlan(
        cfg=cfg, conv=conv, batch=batch, in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w,
        requant=requant,
        input=input_layout(cfg, batch, conv.in_channels, in_h, in_w),
        output=output_layout(cfg, batch, conv.out_channels, out_h, out_w, requant),
        block_ranges=tuple(block_ranges), weights_bytes=weights_bytes,
        params_bytes=math.ceil(conv.out_channels / cfg.cols) * cfg.p_elem_words * cfg.bus_bytes)
    if plan.total_bytes > capacity:
        sizes = ", ".join(f"{name} {size}" for name, size in plan.regions.items())
        raise ValueError(f"accelerator memory too small: the layer needs {plan.total_bytes} "
                         f"bytes ({sizes}), {capacity} are available")
    return plan
