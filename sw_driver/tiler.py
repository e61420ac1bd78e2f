"""Maps a Program's convolution passes to descriptors and memory regions.

`plan_program` checks that the hardware can take every pass (each refusal is
a ValueError naming the parameter and its allowed range, raised before
anything touches the device), lays out the four memory regions (input,
weights, params, output) and chooses each pass's tile size with the cycle
model.

Grouped convolutions: for each output-channel block the input-channel blocks
it needs form a contiguous range; consecutive output blocks with the same
range share one descriptor whose weights are dense and block-diagonal (zero
between groups). A batch gets one descriptor set per image.
"""

from dataclasses import dataclass
import math

from hw.config import AccelConfig

from .cycles import DEFAULT_TIMING, simulate
from .layout import BlockedLayout, input_layout, output_layout

__all__ = ["BlockRange", "PassPlan", "Plan", "plan_program", "tile_limit", "choose_tile",
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
class PassPlan:
    """A pass's descriptor geometry and its block ranges."""

    conv_pass: object
    block_ranges: tuple

    def geometry(self):
        """The descriptor fields that do not depend on addresses or blocks."""
        p = self.conv_pass
        (kh, kw), (sh, sw), (pad_t, pad_l) = p.kernel_size, p.stride, p.padding
        return {"IN_H": p.in_rows.count, "IN_W": p.in_cols.count,
                "OUT_H": p.out_rows.count, "OUT_W": p.out_cols.count,
                "KH": kh, "KW": kw, "SH": sh, "SW": sw, "PAD_T": pad_t, "PAD_L": pad_l}


@dataclass(frozen=True)
class Plan:
    """Descriptors and memory regions of one Program on one accelerator configuration."""

    cfg: AccelConfig
    batch: int
    requant: bool
    input: BlockedLayout
    output: BlockedLayout
    passes: tuple
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
        src, dst = self.input, self.output
        result = []
        for image in range(self.batch):
            for plan in self.passes:
                p = plan.conv_pass
                in_base = (bases["input"] + image * src.image_pitch
                           + p.in_rows.start * src.row_pitch + p.in_cols.start * src.elem_pitch)
                out_base = (bases["output"] + image * dst.image_pitch
                            + p.out_rows.start * dst.row_pitch + p.out_cols.start * dst.elem_pitch)
                for blocks in plan.block_ranges:
                    result.append({
                        **plan.geometry(),
                        "IN_BASE": in_base + blocks.cib_start * src.blk_pitch,
                        "IN_ELEM_PITCH": src.elem_pitch * p.in_cols.step,
                        "IN_ROW_PITCH": src.row_pitch * p.in_rows.step,
                        "IN_BLK_PITCH": src.blk_pitch,
                        "OUT_BASE": out_base + blocks.cob_start * dst.blk_pitch,
                        "OUT_ELEM_PITCH": dst.elem_pitch * p.out_cols.step,
                        "OUT_ROW_PITCH": dst.row_pitch * p.out_rows.step,
                        "OUT_BLK_PITCH": dst.blk_pitch,
                        "W_BASE": bases["weights"] + blocks.weight_offset,
                        "P_BASE": bases["params"] + blocks.cob_start * p_bytes,
                        "CI_BLOCKS": blocks.ci_blocks, "CO_BLOCKS": blocks.co_blocks,
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


def _block_ranges(cfg, in_channels, out_channels, groups):
    """(cob_start, cob_stop, cib_start, cib_stop) of a pass's descriptors, in order."""
    rows, cols = cfg.rows, cfg.cols
    out_per_group = out_channels // groups
    in_per_group = in_channels // groups
    ranges = []
    for cob in range(math.ceil(out_channels / cols)):
        first_group = cob * cols // out_per_group
        last_group = (min(out_channels, (cob + 1) * cols) - 1) // out_per_group
        cibs = (first_group * in_per_group // rows,
                ((last_group + 1) * in_per_group - 1) // rows + 1)
        if ranges and ranges[-1][2:] == cibs:
            ranges[-1] = (ranges[-1][0], cob + 1, *cibs)
        else:
            ranges.append((cob, cob + 1, *cibs))
    return ranges


def _check_pass(cfg, conv_pass):
    """ValueError naming the parameter when the hardware cannot run `conv_pass`."""
    _check_limit("kernel_size", tuple(conv_pass.kernel_size), 1, cfg.kernel_max,
                 f"the accelerator's kernel_max {cfg.kernel_max}")
    _check_limit("stride", tuple(conv_pass.stride), 1, cfg.stride_max,
                 f"the accelerator's stride_max {cfg.stride_max}")
    _check_limit("padding", tuple(conv_pass.padding), -PAD_MAX - 1, PAD_MAX,
                 "the 16-bit signed PAD_T/PAD_L field")
    _check_limit("input size", (conv_pass.in_rows.count, conv_pass.in_cols.count), 1,
                 FIELD_MAX, "the 16-bit IN_H/IN_W field")
    _check_limit("output size", (conv_pass.out_rows.count, conv_pass.out_cols.count), 1,
                 FIELD_MAX, "the 16-bit OUT_H/OUT_W field")
    kh, kw = conv_pass.kernel_size
    if kh * kw > cfg.in_depth:
        raise ValueError(f"kernel_size {tuple(conv_pass.kernel_size)} is not supported: one "
                         f"output pixel reads a {kh}x{kw} input window, the accelerator's "
                         f"in_depth {cfg.in_depth} allows at most {cfg.in_depth} elements")


def plan_program(cfg, program, *, requant, capacity, timing=DEFAULT_TIMING):
    """Plan `program` (a sw_driver.program.Program) on `cfg`.

    `requant` selects int8 outputs (MODE 1) over int32 (MODE 0); `capacity`
    is the accelerator memory available for the four regions, in bytes.
    Raises ValueError naming the parameter when the hardware cannot take a
    pass: kernel_size beyond cfg.kernel_max, stride beyond cfg.stride_max, a
    one-pixel input window beyond cfg.in_depth, sizes beyond the descriptor
    fields, or too little memory.
    """
    batch, in_channels, in_h, in_w = program.input.shape
    out_channels = program.out_channels
    _check_limit("in_channels", in_channels, 1, FIELD_MAX * cfg.rows,
                 f"the 16-bit CI_BLOCKS field with {cfg.rows} channels per block")
    _check_limit("out_channels", out_channels, 1, FIELD_MAX * cfg.cols,
                 f"the 16-bit CO_BLOCKS field with {cfg.cols} channels per block")
    w_elem_bytes = cfg.w_elem_words * cfg.bus_bytes
    tiles, pass_plans, weights_bytes = {}, [], 0
    for conv_pass in program.passes:
        _check_pass(cfg, conv_pass)
        geometry = PassPlan(conv_pass, ()).geometry()
        kh, kw = conv_pass.kernel_size
        block_ranges = []
        for cob_start, cob_stop, cib_start, cib_stop in _block_ranges(
                cfg, in_channels, out_channels, conv_pass.groups):
            shape = (cob_stop - cob_start, cib_stop - cib_start)
            key = (tuple(sorted(geometry.items())), shape)
            if key not in tiles:
                tiles[key] = choose_tile(cfg, {**geometry, "MODE": int(requant),
                                               "CO_BLOCKS": shape[0], "CI_BLOCKS": shape[1]},
                                         timing)
            block_ranges.append(BlockRange(cob_start, cob_stop, cib_start, cib_stop,
                                           weights_bytes, *tiles[key]))
            weights_bytes += shape[0] * shape[1] * kh * kw * w_elem_bytes
        pass_plans.append(PassPlan(conv_pass, tuple(block_ranges)))

    plan = Plan(
        cfg=cfg, batch=batch, requant=requant,
        input=input_layout(cfg, batch, in_channels, in_h, in_w),
        output=output_layout(cfg, batch, out_channels, *program.out_size, requant),
        passes=tuple(pass_plans), weights_bytes=weights_bytes,
        params_bytes=math.ceil(out_channels / cfg.cols) * cfg.p_elem_words * cfg.bus_bytes)
    if plan.total_bytes > capacity:
        sizes = ", ".join(f"{name} {size}" for name, size in plan.regions.items())
        raise ValueError(f"accelerator memory too small: the layer needs {plan.total_bytes} "
                         f"bytes ({sizes}), {capacity} are available")
    return plan
