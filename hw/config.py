"""Generator parameters of the accelerator, their validation, derived sizes and
the register map.

This module is the single source of truth that the hardware, the generator's
manifest and C header, and the host driver all read.
"""

from dataclasses import dataclass, field, asdict
import math

__all__ = ["AccelConfig", "REG", "DESC_FIELDS", "PREP_PRODUCTS", "COUNTERS", "ERROR", "MAGIC",
           "VERSION", "ConfigError", "identification"]

MAGIC = 0x434E5641          # "CNVA"
VERSION = 0x0001_0000       # major.minor in the high and low halves


class ConfigError(ValueError):
    """A generator parameter is out of its allowed range."""


# Descriptor fields, in register order from REG["DESC"]. Each is a 32-bit register;
# `signed` fields are two's complement. `bits` is the width the hardware keeps: a
# value that does not fit is refused with ERROR["RANGE"].
DESC_FIELDS = (
    # name            bits  signed
    ("IN_BASE",        32, False),
    ("IN_ELEM_PITCH",  32, False),
    ("IN_ROW_PITCH",   32, False),
    ("IN_BLK_PITCH",   32, False),
    ("OUT_BASE",       32, False),
    ("OUT_ELEM_PITCH", 32, False),
    ("OUT_ROW_PITCH",  32, False),
    ("OUT_BLK_PITCH",  32, False),
    ("W_BASE",         32, False),
    ("P_BASE",         32, False),
    ("IN_H",           16, False),
    ("IN_W",           16, False),
    ("OUT_H",          16, False),
    ("OUT_W",          16, False),
    ("CI_BLOCKS",      16, False),
    ("CO_BLOCKS",      16, False),
    ("KH",              8, False),
    ("KW",              8, False),
    ("SH",              8, False),
    ("SW",              8, False),
    ("PAD_T",          16, True),
    ("PAD_L",          16, True),
    ("TILE_H",         16, False),
    ("TILE_W",         16, False),
    ("MODE",            1, False),
    ("OUT_ZP",          8, True),
    ("ACT_MIN",         8, True),
    ("ACT_MAX",         8, True),
)

# The per-descriptor products, in the order the dispatcher computes them:
# (result, factor a (the one whose bits are counted), factor b, negated).
# Factors name descriptor fields (truncated to their widths), earlier results,
# "ELEM_WORDS" (the weight element's bus words), "OUT_H_M1" (OUT_H - 1) or
# "span_h" ((TILE_H - 1) * SH + KH). `hw.jobs.Dispatcher` computes them,
# `sw_driver.cycles` counts their cycles.
PREP_PRODUCTS = (
    ("taps",           "KH",          "KW",            False),
    ("w_words",        "ELEM_WORDS",  "taps",          False),
    ("ty_step",        "SH",          "TILE_H",        False),   # TILE_H * SH
    ("tx_step",        "SW",          "TILE_W",        False),
    ("in_row_start",   "PAD_T",       "IN_ROW_PITCH",  True),    # -PAD_T * IN_ROW_PITCH
    ("in_col_start",   "PAD_L",       "IN_ELEM_PITCH", True),
    ("in_row_step",    "ty_step",     "IN_ROW_PITCH",  False),
    ("in_col_step",    "tx_step",     "IN_ELEM_PITCH", False),
    ("out_row_step",   "TILE_H",      "OUT_ROW_PITCH", False),
    ("out_col_step",   "TILE_W",      "OUT_ELEM_PITCH", False),
    ("last_y",         "SH",          "OUT_H_M1",      False),   # (OUT_H - 1) * SH
    ("last_x",         "SW",          "OUT_W_M1",      False),
    ("tile_pixels",    "TILE_H",      "TILE_W",        False),
    ("window_elems",   "span_h",      "span_w",        False),
)


# Performance counters of `counter_width` bits (64 by default), each as a LO/HI
# register pair from REG["COUNTERS"].
COUNTERS = ("CYCLES", "ACTIVE", "MACS", "BYTES_RD", "BYTES_WR", "STALL")

# Error codes in STATUS[15:8]. 0 means no error.
ERROR = {
    "KERNEL": 1,     # KH or KW outside 1..kernel_max
    "STRIDE": 2,     # SH or SW outside 1..stride_max
    "SHAPE": 3,      # IN_H, IN_W, OUT_H or OUT_W is 0
    "BLOCKS": 4,     # CI_BLOCKS or CO_BLOCKS is 0
    "TILE": 5,       # TILE_H or TILE_W is 0, or TILE_H*TILE_W > acc_depth
    "WINDOW": 6,     # input window of a full tile exceeds in_depth elements
    "ALIGN": 7,      # a base address or pitch is not a multiple of the bus width in bytes
    "RANGE": 8,      # a field has bits set beyond its width (or a signed field out of range)
    "ACT": 9,        # ACT_MIN > ACT_MAX
    "DMA_READ": 16,  # an AXI read returned SLVERR/DECERR
    "DMA_WRITE": 17, # an AXI write returned SLVERR/DECERR
}

# Byte offsets of the AXI4-Lite registers.
REG = {
    "MAGIC": 0x000, "VERSION": 0x004,
    "HW_ROWS": 0x008, "HW_COLS": 0x00C, "HW_DATA_WIDTH": 0x010, "HW_ACC_WIDTH": 0x014,
    "HW_AXI_DATA_WIDTH": 0x018, "HW_AXI_ADDR_WIDTH": 0x01C, "HW_KERNEL_MAX": 0x020,
    "HW_STRIDE_MAX": 0x024, "HW_IN_DEPTH": 0x028, "HW_ACC_DEPTH": 0x02C,
    "HW_REQUANT_LANES": 0x030, "HW_REQUANT_DIGIT_BITS": 0x034, "HW_COUNTER_WIDTH": 0x038,
    "CTRL": 0x040,       # W: bit0 start (ignored while busy), bit1 clear done/error
    "STATUS": 0x044,     # R: bit0 busy, bit1 done, bit2 error, bits 15:8 error code
    "IRQ_ENABLE": 0x048, # RW: bit0 drives the irq output from STATUS.done
    "DESC": 0x080,       # DESC_FIELDS[i] at DESC + 4*i
    "COUNTERS": 0x100,   # COUNTERS[i] at COUNTERS + 8*i (LO), +4 (HI)
}
STATUS_BUSY, STATUS_DONE, STATUS_ERROR = 1, 2, 4
CTRL_START, CTRL_CLEAR = 1, 2


def identification(cfg):
    """{register offset: value} of MAGIC, VERSION and the HW_* registers: each
    HW_X reads the configuration field x, from which a driver rebuilds it."""
    values = {REG["MAGIC"]: MAGIC, REG["VERSION"]: VERSION}
    values.update({offset: getattr(cfg, name[3:].lower())
                   for name, offset in REG.items() if name.startswith("HW_")})
    return values


def desc_offset(name):
    """Byte offset of descriptor field `name`."""
    for index, (field_name, _, _) in enumerate(DESC_FIELDS):
        if field_name == name:
            return REG["DESC"] + 4 * index
    raise KeyError(f"unknown descriptor field {name!r}")


def counter_offset(name):
    """Byte offset of the LO half of counter `name` (HI is at +4)."""
    return REG["COUNTERS"] + 8 * COUNTERS.index(name)


def _check_int(name, value, low, high=None, *, power_of_two=False):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be in {allowed}, not {value}")
    if power_of_two and value & (value - 1):
        raise ConfigError(f"{name} must be a power of two, not {value}")


@dataclass(frozen=True)
class AccelConfig:
    """Generator parameters. Construct with keywords; invalid values raise ConfigError."""

    rows: int = 8                 # R: input channels per cycle (array rows)
    cols: int = 8                 # C: output channels per cycle (array columns)
    data_width: int = 8           # signed operand width (int8)
    acc_width: int = 32           # signed accumulator width, wraps on overflow
    axi_data_width: int = 64      # AXI4 master data bus width in bits
    axi_addr_width: int = 32
    kernel_max: int = 7           # largest KH and KW
    stride_max: int = 4           # largest SH and SW
    in_depth: int = 2048          # input buffer elements (pixels x R channels) per bank
    acc_depth: int = 1024         # accumulator buffer elements (pixels x C channels) per bank
    requant_lanes: int = 0        # requantisation lanes, 1..cols; 0: as many as int8
                                  # outputs fit a bus word (see `requant_lane_count`)
    requant_digit_bits: int = 8   # digits of the lanes' 32 x 32 product: 8 (sixteen
                                  # 8 x 8 products, for LUT logic) or 16 (four 16 x 16
                                  # unsigned products, one DSP block each)
    counter_width: int = 64       # bits of each performance counter (32..64), which
                                  # wraps there; the HI register holds the bits above 32

    def __post_init__(self):
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        _check_int("data_width", self.data_width, 8, 8)
        _check_int("acc_width", self.acc_width, 32, 32)
        _check_int("axi_data_width", self.axi_data_width, 32, 512, power_of_two=True)
        _check_int("axi_addr_width", self.axi_addr_width, 16, 32)
        _check_int("kernel_max", self.kernel_max, 1, 16)
        _check_int("stride_max", self.stride_max, 1, 8)
        _check_int("in_depth", self.in_depth, 16, 1 << 16)
        _check_int("acc_depth", self.acc_depth, 16, 1 << 16)
        _check_int("requant_lanes", self.requant_lanes, 0, self.cols)
        _check_int("counter_width", self.counter_width, 32, 64)
        if type(self.requant_digit_bits) is not int or self.requant_digit_bits not in (8, 16):
            raise ConfigError(f"requant_digit_bits must be 8 or 16, not "
                              f"{self.requant_digit_bits!r}")

    # Derived sizes. Every DMA element is a whole number of bus words, word aligned.
    @property
    def bus_bytes(self):
        return self.axi_data_width // 8

    def words(self, nbytes):
        """Bus words that hold `nbytes` bytes."""
        return math.ceil(nbytes / self.bus_bytes)

    @property
    def in_elem_words(self):
        """Words of one input element: R int8 channels of one pixel."""
        return self.words(self.rows)

    @property
    def w_elem_words(self):
        """Words of one weight element: the R x C int8 matrix of one (kh, kw)."""
        return self.words(self.rows * self.cols)

    @property
    def p_elem_words(self):
        """Words of one parameter element: bias[C], multiplier[C], shift[C], all int32."""
        return self.words(3 * 4 * self.cols)

    def out_elem_words(self, requant):
        """Words of one output element: C int8 (requant) or C int32 (raw) channels."""
        return self.words(self.cols * (1 if requant else 4))

    @property
    def pes(self):
        return self.rows * self.cols

    @property
    def requant_lane_count(self):
        """Requantisation lanes: `requant_lanes`, or by default as many as int8
        outputs fit one bus word. An output element of C int8 channels takes
        that many bus words, so by default lanes working through the channels
        in `requant_groups` cycles keep up with the bus; fewer lanes (DSP
        blocks on small FPGAs) slow the store of layers whose pixels take
        fewer compute cycles than that."""
        return self.requant_lanes or min(self.cols, self.bus_bytes)

    @property
    def requant_groups(self):
        """Cycles the lanes take for one pixel's C channels."""
        return math.ceil(self.cols / self.requant_lane_count)

    def as_dict(self):
        return asdict(self)

    def derived(self):
        return {
            "pes": self.pes,
            "bus_bytes": self.bus_bytes,
            "requant_lane_count": self.requant_lane_count,
            "requant_groups": self.requant_groups,
            "in_elem_words": self.in_elem_words,
            "w_elem_words": self.w_elem_words,
            "p_elem_words": self.p_elem_words,
            "out_elem_words_int8": self.out_elem_words(True),
            "out_elem_words_int32": self.out_elem_words(False),
            "in_buffer_bytes": 2 * self.in_depth * self.rows,
            "acc_buffer_bytes": 2 * self.acc_depth * self.cols * self.acc_width // 8,
            "weight_buffer_bytes": 2 * self.kernel_max ** 2 * self.pes,
        }
