"""The NumPy model against docs/architecture.md, on hand-built descriptors.

Tensors are placed with the test's own address arithmetic (not
sw_driver.layout), often in layouts the driver never uses, and results are
compared with `conv2d_reference` and a scalar requantisation written here
from the gemmlowp definitions.
"""

from dataclasses import replace
import numpy as np
import pytest

from hw.config import (AccelConfig, COUNTERS, CTRL_CLEAR, CTRL_START, DESC_FIELDS, ERROR, MAGIC,
                       REG, STATUS_BUSY, STATUS_DONE, STATUS_ERROR, VERSION, counter_offset,
                       desc_offset)
from sw_driver.cycles import Timing, first_tile_cycles, prepare_cycles, simulate
from sw_driver.layers import Conv2dParams
from sw_driver.model import ModelTransport, check_descriptor, decode_descriptor
from sw_driver.reference import conv2d_reference
from sw_driver.transport import DoneTimeout

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
MASK = 0xFFFF_FFFF
SENTINEL = 0xA5
GEOMETRY_CFG = AccelConfig(rows=3, cols=5, axi_data_width=32)
CONFIGS = {
    "8x8": AccelConfig(),
    "4x16": AccelConfig(rows=4, cols=16, in_depth=256, acc_depth=64),
    "3x5_bus32": AccelConfig(rows=3, cols=5, axi_data_width=32, in_depth=64, acc_depth=16),
}


# Hand placement of tensors.
class Placement:
    """A hand-built descriptor: tensors placed by explicit address arithmetic.

    `x` is (CI*R, IN_H, IN_W) int8, `w` (CO*C, CI*R, KH, KW) int8, `bias`,
    `mult`, `shift` (CO*C,) int32: every channel is real, the hardware has no
    notion of padding channels. Gaps between elements and rows are left
    holding SENTINEL so stray writes show.
    """

    def __init__(self, cfg, rng, *, ci_blocks=2, co_blocks=2, in_h=6, in_w=5, kh=3, kw=2,
                 sh=1, sw=1, pad_t=1, pad_l=0, out_h=None, out_w=None, tile_h=3, tile_w=2,
                 mode=0, out_zp=0, act_min=-128, act_max=127, gap=1):
        self.cfg = cfg
        bus = cfg.bus_bytes
        rows, cols = cfg.rows, cfg.cols
        if out_h is None:
            out_h = (in_h + 2 * pad_t - kh) // sh + 1
        if out_w is None:
            out_w = (in_w + 2 * pad_l - kw) // sw + 1
        in_elem = cfg.in_elem_words * bus
        out_elem = cfg.out_elem_words(mode == 1) * bus
        # Planar blocks (all of block 0, then block 1, ...), with gaps.
        in_elem_pitch = in_elem + gap * bus
        in_row_pitch = in_w * in_elem_pitch + gap * bus
        in_blk_pitch = in_h * in_row_pitch + gap * bus
        out_elem_pitch = out_elem + gap * bus
        out_row_pitch = out_w * out_elem_pitch + gap * bus
        out_blk_pitch = out_h * out_row_pitch + gap * bus
        self.desc = {
            "IN_BASE": 0x100 * bus, "IN_ELEM_PITCH": in_elem_pitch,
            "IN_ROW_PITCH": in_row_pitch, "IN_BLK_PITCH": in_blk_pitch,
            "OUT_BASE": 0x4000 * bus, "OUT_ELEM_PITCH": out_elem_pitch,
            "OUT_ROW_PITCH": out_row_pitch, "OUT_BLK_PITCH": out_blk_pitch,
            "W_BASE": 0x8000 * bus, "P_BASE": 0xC000 * bus,
            "IN_H": in_h, "IN_W": in_w, "OUT_H": out_h, "OUT_W": out_w,
            "CI_BLOCKS": ci_blocks, "CO_BLOCKS": co_blocks, "KH": kh, "KW": kw,
            "SH": sh, "SW": sw, "PAD_T": pad_t, "PAD_L": pad_l,
            "TILE_H": tile_h, "TILE_W": tile_w, "MODE": mode,
            "OUT_ZP": out_zp, "ACT_MIN": act_min, "ACT_MAX": act_max,
        }
        self.x = rng.integers(-128, 127, (ci_blocks * rows, in_h, in_w), endpoint=True,
                              dtype=np.int8)
        self.w = rng.integers(-128, 127, (co_blocks * cols, ci_blocks * rows, kh, kw),
                              endpoint=True, dtype=np.int8)
        self.bias = rng.integers(INT32_MIN, INT32_MAX, co_blocks * cols, endpoint=True,
                                 dtype=np.int64)
        self.mult = rng.integers(INT32_MIN, INT32_MAX, co_blocks * cols, endpoint=True,
                                 dtype=np.int64)
        self.shift = rng.integers(0, 40, co_blocks * cols, dtype=np.int64)  # >= 32 wraps

    def in_addr(self, cib, iy, ix):
        d = self.desc
        return (d["IN_BASE"] + cib * d["IN_BLK_PITCH"] + iy * d["IN_ROW_PITCH"]
                + ix * d["IN_ELEM_PITCH"])

    def out_addr(self, cob, oy, ox):
        d = self.desc
        return (d["OUT_BASE"] + cob * d["OUT_BLK_PITCH"] + oy * d["OUT_ROW_PITCH"]
                + ox * d["OUT_ELEM_PITCH"])

    def out_elem_bytes(self):
        return self.cfg.out_elem_words(self.desc["MODE"] == 1) * self.cfg.bus_bytes

    def write(self, memory):
        """Fill `memory` (a uint8 array) with SENTINEL, then the operands."""
        cfg, d = self.cfg, self.desc
        rows, cols, bus = cfg.rows, cfg.cols, cfg.bus_bytes
        memory[:] = SENTINEL
        for cib in range(d["CI_BLOCKS"]):
            for iy in range(d["IN_H"]):
                for ix in range(d["IN_W"]):
                    address = self.in_addr(cib, iy, ix)
                    memory[address:address + cfg.in_elem_words * bus] = 0x5A   # padding bytes
                    memory[address:address + rows] = \
                        self.x[cib * rows:(cib + 1) * rows, iy, ix].view(np.uint8)
        w_elem = cfg.w_elem_words * bus
        index = 0
        for cob in range(d["CO_BLOCKS"]):
            for cib in range(d["CI_BLOCKS"]):
                for kh in range(d["KH"]):
                    for kw in range(d["KW"]):
                        matrix = self.w[cob * cols:(cob + 1) * cols,
                                        cib * rows:(cib + 1) * rows, kh, kw].T  # [r][c]
                        address = d["W_BASE"] + index * w_elem
                        memory[address:address + rows * cols] = matrix.reshape(-1).view(np.uint8)
                        index += 1
        p_elem = cfg.p_elem_words * bus
        for cob in range(d["CO_BLOCKS"]):
            channels = slice(cob * cols, (cob + 1) * cols)
            words = np.concatenate([self.bias[channels], self.mult[channels],
                                    self.shift[channels]]).astype("<i4")
            address = d["P_BASE"] + cob * p_elem
            memory[address:address + 12 * cols] = words.view(np.uint8)

    def reference_acc(self):
        """(CO*C, OUT_H, OUT_W) int32 from conv2d_reference, PAD_T/PAD_L by explicit
        zero rows/columns or cropping."""
        d = self.desc
        x = self.x[None]
        for axis, pad, out, stride, k in ((2, d["PAD_T"], d["OUT_H"], d["SH"], d["KH"]),
                                          (3, d["PAD_L"], d["OUT_W"], d["SW"], d["KW"])):
            if pad >= 0:
                shape = list(x.shape)
                shape[axis] = pad
                x = np.concatenate([np.zeros(shape, np.int8), x], axis=axis)
            else:
                x = np.take(x, np.arange(-pad, x.shape[axis]), axis=axis)
            needed = (out - 1) * stride + k
            if x.shape[axis] < needed:
                shape = list(x.shape)
                shape[axis] = needed - x.shape[axis]
                x = np.concatenate([x, np.zeros(shape, np.int8)], axis=axis)
            x = np.take(x, np.arange(needed), axis=axis)
        params = Conv2dParams(self.w.shape[1], self.w.shape[0], (d["KH"], d["KW"]),
                              stride=(d["SH"], d["SW"]))
        return conv2d_reference(x, self.w, self.bias.astype(np.int32), params)[0]

    def expected_values(self):
        """(CO*C, OUT_H, OUT_W) expected channel values (int32 or int8)."""
        acc = self.reference_acc()
        if self.desc["MODE"] == 0:
            return acc
        d = self.desc
        out = np.empty(acc.shape, dtype=np.int8)
        for channel, oy, ox in np.ndindex(acc.shape):
            out[channel, oy, ox] = scalar_requant(
                int(acc[channel, oy, ox]), int(self.mult[channel]), int(self.shift[channel]),
                d["OUT_ZP"], d["ACT_MIN"], d["ACT_MAX"])
        return out

    def expected_element(self, values, cob, oy, ox):
        """Bytes of output element (cob, oy, ox): C channels, then zero padding."""
        cols = self.cfg.cols
        channels = values[cob * cols:(cob + 1) * cols, oy, ox]
        data = channels.astype("<i4" if self.desc["MODE"] == 0 else "i1").view(np.uint8)
        return np.concatenate([data, np.zeros(self.out_elem_bytes() - data.size, np.uint8)])


def scalar_requant(acc, mult, shift, zero_point, act_min, act_max):
    """docs/architecture.md requant with Python ints (gemmlowp srdhm and rdivpot)."""
    shift %= 32
    product = acc * mult
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    total = product + nudge
    high = abs(total) // (1 << 31) * (1 if total >= 0 else -1)    # C division
    if acc == mult == INT32_MIN:
        high = INT32_MAX
    mask = (1 << shift) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    scaled = (high >> shift) + (1 if (high & mask) > threshold else 0)
    return min(max(scaled + zero_point, act_min), act_max)


def registers(fields):
    return {name: fields[name] & MASK for name, _, _ in DESC_FIELDS}


def start(model, fields):
    for name, value in registers(fields).items():
        model.write_reg(desc_offset(name), value)
    model.write_reg(REG["IRQ_ENABLE"], 1)
    model.write_reg(REG["CTRL"], CTRL_CLEAR | CTRL_START)


def run(model, fields):
    """Run a descriptor to done; return (STATUS, waited cycles, counters)."""
    start(model, fields)
    waited = model.wait_done(1 << 40)
    counters = {name: model.read_reg(counter_offset(name))
                | model.read_reg(counter_offset(name) + 4) << 32 for name in COUNTERS}
    return model.read_reg(REG["STATUS"]), waited, counters


def run_placement(cfg, placement, mem_size=1 << 20):
    model = ModelTransport(cfg, mem_size=mem_size)
    placement.write(model.memory)
    before = model.memory.copy()
    status, waited, counters = run(model, placement.desc)
    assert status == STATUS_DONE, f"status {status:#x}"
    return model, before, waited, counters


def check_outputs(placement, model, before):
    """Every output element as expected; every other byte unchanged."""
    d = placement.desc
    values = placement.expected_values()
    touched = np.zeros(model.mem_size, dtype=bool)
    size = placement.out_elem_bytes()
    for cob in range(d["CO_BLOCKS"]):
        for oy in range(d["OUT_H"]):
            for ox in range(d["OUT_W"]):
                address = placement.out_addr(cob, oy, ox)
                np.testing.assert_array_equal(
                    model.memory[address:address + size],
                    placement.expected_element(values, cob, oy, ox),
                    err_msg=f"output element cob={cob} oy={oy} ox={ox}")
                touched[address:address + size] = True
    np.testing.assert_array_equal(model.memory[~touched], before[~touched])


# Functional semantics.
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("mode", [0, 1])
def test_planar_layout_with_gaps(name, mode):
    cfg = CONFIGS[name]
    placement = Placement(cfg, np.random.default_rng(1), mode=mode, out_zp=-3, act_min=-100,
                          act_max=90)
    model, before, _, _ = run_placement(cfg, placement)
    check_outputs(placement, model, before)


@pytest.mark.parametrize("geometry", [
    dict(kh=1, kw=1, pad_t=0, pad_l=0, tile_h=1, tile_w=1),
    dict(kh=3, kw=3, pad_t=1, pad_l=1, tile_h=16, tile_w=16),       # tile larger than output
    dict(kh=2, kw=3, sh=2, sw=3, pad_t=1, pad_l=2, tile_h=2, tile_w=1),
    dict(kh=3, kw=1, sh=3, sw=1, pad_t=0, pad_l=0, tile_h=1, tile_w=5),   # stride > kernel
    dict(kh=2, kw=2, pad_t=-1, pad_l=-2, out_h=3, out_w=2, tile_h=2, tile_w=2),  # cropping
    dict(kh=3, kw=3, pad_t=5, pad_l=6, out_h=4, out_w=5, tile_h=2, tile_w=2),  # empty windows
    dict(kh=1, kw=2, pad_t=0, pad_l=0, out_h=2, out_w=2, tile_h=1, tile_w=2),  # IN unused
    dict(kh=5, kw=4, sh=2, sw=2, pad_t=2, pad_l=1, out_h=3, out_w=5, tile_h=3, tile_w=2),
])
@pytest.mark.parametrize("mode", [0, 1])
def test_geometry(geometry, mode):
    cfg = GEOMETRY_CFG
    placement = Placement(cfg, np.random.default_rng(2), mode=mode, ci_blocks=3, co_blocks=2,
                          **geometry)
    model, before, _, _ = run_placement(cfg, placement)
    check_outputs(placement, model, before)


def test_accumulation_wraps_modulo_2_32():
    cfg = CONFIGS["8x8"]
    placement = Placement(cfg, np.random.default_rng(3), ci_blocks=1, co_blocks=1, in_h=1,
                          in_w=1, kh=1, kw=1, pad_t=0, pad_l=0, tile_h=1, tile_w=1)
    placement.x[:] = 127
    placement.w[:] = 127
    placement.bias[:] = INT32_MAX
    model, before, _, _ = run_placement(cfg, placement)
    address = placement.out_addr(0, 0, 0)
    values = model.memory[address:address + 32].view("<i4")
    np.testing.assert_array_equal(values, INT32_MAX + 8 * 127 * 127 - (1 << 32))
    check_outputs(placement, model, before)


def test_requant_edge_values():
    """MODE 1 with the extremes: INT32_MIN multiplier and accumulator, shifts 0, 31, 32, 63."""
    cfg = CONFIGS["8x8"]
    placement = Placement(cfg, np.random.default_rng(4), ci_blocks=1, co_blocks=1, in_h=1,
                          in_w=2, kh=1, kw=1, pad_t=0, pad_l=0, tile_h=1, tile_w=2, mode=1,
                          out_zp=5, act_min=-128, act_max=127)
    placement.x[:] = 0
    placement.bias[:] = [INT32_MIN, INT32_MIN, INT32_MAX, -7, 7, 1 << 20, -(1 << 20), 0]
    placement.mult[:] = [INT32_MIN, INT32_MAX, INT32_MIN, 1 << 30, -(1 << 30), INT32_MAX,
                         INT32_MAX, 12345]
    placement.shift[:] = [0, 31, 32, 1, 63, 12, 12, 0]
    model, before, _, _ = run_placement(cfg, placement)
    check_outputs(placement, model, before)


def test_overlapping_outputs_keep_the_last_write_in_store_order():
    """OUT_BLK_PITCH = TILE_H rows: block 1 of tile row 0 lands where block 0 of tile
    row 1 lands later; store order (for ty: for tx: for cob) leaves block 0's values
    there, where a block-major order would leave block 1's."""
    cfg = CONFIGS["8x8"]
    placement = Placement(cfg, np.random.default_rng(5), ci_blocks=1, co_blocks=2, in_h=4,
                          in_w=3, kh=1, kw=1, pad_t=0, pad_l=0, tile_h=2, tile_w=3, gap=0)
    d = placement.desc
    d["OUT_BLK_PITCH"] = 2 * d["OUT_ROW_PITCH"]
    model, _, _, _ = run_placement(cfg, placement)
    values = placement.expected_values()
    last_write = {}
    for ty in range(2):
        for cob in range(2):
            for oy in range(2 * ty, 2 * ty + 2):
                for ox in range(3):
                    last_write[placement.out_addr(cob, oy, ox)] = (cob, oy, ox)
    assert len(last_write) == 18        # output rows 0..5 of the memory, 2 and 3 written twice
    assert last_write[placement.out_addr(1, 0, 0)] == (0, 2, 0)
    for address, (cob, oy, ox) in last_write.items():
        np.testing.assert_array_equal(model.memory[address:address + 32],
                                      placement.expected_element(values, cob, oy, ox))


def test_unread_input_rows_may_lie_outside_memory():
    """Input rows outside every tile's window are never read, so no DMA_READ."""
    cfg = CONFIGS["8x8"]
    placement = Placement(cfg, np.random.default_rng(6), ci_blocks=1, co_blocks=1, in_h=3,
                          in_w=2, kh=1, kw=1, pad_t=0, pad_l=0, out_h=3, out_w=2, tile_h=1,
                          tile_w=2)
    d = placement.desc
    d["IN_ROW_PITCH"] = 0x1000
    model = ModelTransport(cfg, mem_size=1 << 20)
    placement.write(model.memory)
    before = model.memory.copy()
    d["IN_H"] = 1000
    assert placement.in_addr(0, 255, 0) + 8 <= model.mem_size < placement.in_addr(0, 256, 0)
    assert run(model, d)[0] == STATUS_DONE
    check_outputs(placement, model, before)
    d["OUT_H"] = 257                      # now row 256 is read
    assert run(model, d)[0] == STATUS_DONE | STATUS_ERROR | ERROR["DMA_READ"] << 8


def test_addresses_wrap_at_the_bus_width():
    """With a 16-bit AXI address, addresses wrap: IN_BASE 0x7FFF0100 reads 0x100."""
    cfg = AccelConfig(axi_addr_width=16)
    placement = Placement(cfg, np.random.default_rng(7), ci_blocks=1, co_blocks=1, in_h=2,
                          in_w=2, kh=1, kw=1, pad_t=0, pad_l=0, tile_h=2, tile_w=2)
    d = placement.desc
    d["IN_BASE"], d["OUT_BASE"], d["W_BASE"], d["P_BASE"] = 0x100, 0x2000, 0x4000, 0x6000
    model = ModelTransport(cfg)
    assert model.mem_size == 1 << 16
    placement.write(model.memory)
    before = model.memory.copy()
    d["IN_BASE"] += 0x7FFF_0000
    d["OUT_BASE"] += 0x10000
    assert run(model, d)[0] == STATUS_DONE
    d["IN_BASE"], d["OUT_BASE"] = 0x100, 0x2000
    check_outputs(placement, model, before)


# Counters and cycles.
def one_by_one(**changes):
    """A 2x2 image, 1x1 kernel, one tile, 8x8 array, B = 8."""
    fields = {
        "IN_BASE": 0, "IN_ELEM_PITCH": 8, "IN_ROW_PITCH": 16, "IN_BLK_PITCH": 32,
        "OUT_BASE": 0x1000, "OUT_ELEM_PITCH": 32, "OUT_ROW_PITCH": 64, "OUT_BLK_PITCH": 128,
        "W_BASE": 0x2000, "P_BASE": 0x3000, "IN_H": 2, "IN_W": 2, "OUT_H": 2, "OUT_W": 2,
        "CI_BLOCKS": 1, "CO_BLOCKS": 1, "KH": 1, "KW": 1, "SH": 1, "SW": 1,
        "PAD_T": 0, "PAD_L": 0, "TILE_H": 2, "TILE_W": 2, "MODE": 0,
        "OUT_ZP": 0, "ACT_MIN": -128, "ACT_MAX": 127,
    }
    fields.update(changes)
    return fields


# The dispatcher's products for one_by_one(): bit lengths + 2 of KH 1, weight
# element words 8, SH 1, SW 1, PAD_T 0, PAD_L 0, TILE_H * SH 2, TILE_W * SW 2,
# TILE_H 2, TILE_W 2, SH 1, SW 1, TILE_H 2, span_h 2; then SH 1 and PAD_T 0 for
# the first tile.
PREPARED = 3 + 6 + 3 + 3 + 2 + 2 + 4 + 4 + 4 + 4 + 3 + 3 + 4 + 4 + 3 + 2


def test_counters_of_one_job():
    """dispatch 8 + 54 = 62; load 62 + 4 + read latency 8 + (12 params + 8
    weight + 4 input beats) + 1 = 99; compute 99..103 (4 pixels); store accepts
    103 + 7 = 110, words 127..143 (4 int32 elements of 4 words); done 143 + 4 = 147."""
    model = ModelTransport(CONFIGS["8x8"])
    fields = one_by_one()
    assert prepare_cycles(CONFIGS["8x8"], fields) + first_tile_cycles(fields) == PREPARED == 54
    status, waited, counters = run(model, fields)
    assert status == STATUS_DONE
    assert waited == 147
    assert counters == {"CYCLES": 147, "ACTIVE": 4, "MACS": 256, "BYTES_RD": 24 * 8,
                        "BYTES_WR": 16 * 8, "STALL": 143}


def test_counters_of_two_pipelined_jobs():
    """CI_BLOCKS = 2: job 0 loads 62..99 and computes 99..103; job 1 loads from
    99, weights first (5 cycles to the request) with no params: 99 + 5 + 8 + 12 +
    1 = 125, computes 125..129; store 136, words 153..169; done 173."""
    model = ModelTransport(CONFIGS["8x8"])
    _, waited, counters = run(model, one_by_one(CI_BLOCKS=2))
    assert waited == counters["CYCLES"] == 173
    assert counters["ACTIVE"] == 8
    assert counters["BYTES_RD"] == (24 + 12) * 8


def test_timing_constants_follow_the_hardware():
    """Constants the model shares with the RTL rather than measures on it."""
    from hw.compute import PASS_MIN
    assert Timing().pass_min == PASS_MIN


def test_counters_follow_the_timing_constants():
    timing = Timing(dispatch=0, load_first_cmd=1, read_latency=0, pass_min=8,
                    acc_handoff=0, store_first_word=0, finish=0)
    model = ModelTransport(CONFIGS["8x8"], timing=timing)
    _, waited, counters = run(model, one_by_one())
    assert waited == PREPARED + (1 + 24 + 1) + 8 + 16  # PASS_MIN 8 > 4 pixels
    assert counters["STALL"] == waited - 4
    fields = one_by_one(CO_BLOCKS=2, OUT_BLK_PITCH=128, MODE=1)
    assert run(model, fields)[2] == simulate(CONFIGS["8x8"], fields, timing)


# Errors.
ERROR_CASES = {
    "KERNEL": dict(KH=0),
    "STRIDE": dict(SW=5),
    "SHAPE": dict(OUT_W=0),
    "BLOCKS": dict(CI_BLOCKS=0),
    "TILE": dict(TILE_H=64, TILE_W=17),
    "WINDOW": dict(TILE_H=32, TILE_W=32, KH=7, KW=7, SH=2, SW=2),
    "ALIGN": dict(IN_ROW_PITCH=12),
    "RANGE": dict(PAD_T=1 << 15),
    "ACT": dict(ACT_MIN=5, ACT_MAX=-5),
    "DMA_READ": dict(W_BASE=(1 << 20) - 8),
    "DMA_WRITE": dict(OUT_BASE=(1 << 20) - 64),
}


def test_every_error_code_has_a_case():
    assert set(ERROR_CASES) == set(ERROR)


@pytest.mark.parametrize("error", sorted(ERROR_CASES))
def test_error_code(error):
    cfg = CONFIGS["8x8"]
    model = ModelTransport(cfg, mem_size=1 << 20)
    model.memory[:] = 3
    fields = one_by_one(**ERROR_CASES[error])
    status, waited, counters = run(model, fields)
    assert status == STATUS_DONE | STATUS_ERROR | ERROR[error] << 8
    assert (model.memory == 3).all(), "nothing is written"
    if error.startswith("DMA_"):
        assert check_descriptor(cfg, registers(fields)) is None
        assert waited == counters["CYCLES"]
        assert counters == simulate(cfg, fields)     # the run goes on to its end
    else:
        assert check_descriptor(cfg, registers(fields)) == error
        refused_after = Timing().reject + prepare_cycles(cfg, decode_descriptor(registers(fields))[0])
        assert waited == counters["CYCLES"] == counters["STALL"] == refused_after
        assert counters["ACTIVE"] == counters["BYTES_RD"] == 0
    model.write_reg(REG["CTRL"], CTRL_CLEAR)
    assert model.read_reg(REG["STATUS"]) == 0


@pytest.mark.parametrize("changes, error", [
    (dict(KH=0, SW=9, OUT_W=0), "KERNEL"),                 # the first failure wins
    (dict(SW=9, OUT_W=0, ACT_MIN=1, ACT_MAX=0), "STRIDE"),
    (dict(OUT_H=0, CO_BLOCKS=0), "SHAPE"),
    (dict(CO_BLOCKS=0, TILE_W=0), "BLOCKS"),
    (dict(TILE_H=0, IN_BASE=4), "TILE"),
    (dict(TILE_H=32, TILE_W=32, KH=7, KW=7, SH=2, SW=2, IN_BASE=4), "WINDOW"),
    (dict(IN_BASE=4, PAD_L=-40000), "ALIGN"),
    (dict(PAD_L=-40000, ACT_MIN=1, ACT_MAX=0), "RANGE"),
    (dict(KH=0x101), "KERNEL"),                           # whole register values are checked
    (dict(IN_H=0x10000), "RANGE"),                        # not 0, so SHAPE passes
    (dict(TILE_W=0x10002), "TILE"),
    (dict(MODE=2), "RANGE"),
    (dict(OUT_ZP=128), "RANGE"),
    (dict(ACT_MIN=0xFF, ACT_MAX=0), "RANGE"),             # 255 is no int8
    (dict(OUT_ZP=-128, ACT_MIN=-128, PAD_T=-(1 << 15)), None),   # sign-extended, in range
    (dict(ACT_MIN=-1, ACT_MAX=-2), "ACT"),
    (dict(TILE_H=32, TILE_W=32), None),                   # 32*32 = acc_depth
    (dict(TILE_H=1, TILE_W=1024, KH=3, KW=3), "WINDOW"),  # 3 * 1026 > in_depth
    (dict(TILE_H=1, TILE_W=680, KH=3, KW=3), None),       # 3 * 682 <= in_depth
])
def test_check_order_and_field_decoding(changes, error):
    assert check_descriptor(CONFIGS["8x8"], registers(one_by_one(**changes))) == error


def test_decode_descriptor():
    raw = registers(one_by_one(PAD_T=-3, OUT_ZP=-1, KH=0x102, ACT_MAX=0x80))
    values, out_of_range = decode_descriptor(raw)
    assert (values["PAD_T"], values["OUT_ZP"], values["KH"], values["ACT_MAX"]) == (-3, -1, 2, -128)
    assert out_of_range == ["KH", "ACT_MAX"]


# Register interface.
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_identification_registers(name):
    cfg = CONFIGS[name]
    model = ModelTransport(cfg)
    assert model.read_reg(REG["MAGIC"]) == MAGIC
    assert model.read_reg(REG["VERSION"]) == VERSION
    for register in REG:
        if register.startswith("HW_"):
            assert model.read_reg(REG[register]) == getattr(cfg, register[3:].lower())
            model.write_reg(REG[register], 99)                   # read-only
            assert model.read_reg(REG[register]) == getattr(cfg, register[3:].lower())


def test_register_file():
    model = ModelTransport(CONFIGS["8x8"])
    for index, (name, _, _) in enumerate(DESC_FIELDS):
        model.write_reg(desc_offset(name), 0xFFFF_0000 + index)
    # A register reads back its field's bits, sign-extended for signed fields.
    for index, (name, bits, signed) in enumerate(DESC_FIELDS):
        kept = (0xFFFF_0000 + index) & ((1 << bits) - 1)
        if signed and kept >> (bits - 1):
            kept |= 0xFFFF_FFFF ^ ((1 << bits) - 1)
        assert model.read_reg(desc_offset(name)) == kept, name
    assert model.read_reg(desc_offset("IN_BASE")) == 0xFFFF_0000
    assert model.read_reg(desc_offset("KH")) == 16
    assert model.read_reg(desc_offset("PAD_T")) == 0x14
    model.write_reg(REG["IRQ_ENABLE"], 0xFFFF_FFFF)
    assert model.read_reg(REG["IRQ_ENABLE"]) == 1
    for offset in (REG["CTRL"], 0x060, 0x3FC, 0xFFC):
        assert model.read_reg(offset) == 0
    with pytest.raises(ValueError, match="register offset must be a multiple of 4"):
        model.read_reg(0x42)
    with pytest.raises(ValueError, match="register offset"):
        model.write_reg(0x1000, 0)
    with pytest.raises(ValueError, match="register value must be an int in 0..0xffffffff"):
        model.write_reg(REG["IRQ_ENABLE"], -1)


@pytest.mark.parametrize("width", [64, 33, 32])
def test_counters_are_lo_hi_pairs_that_wrap_at_their_width(width):
    timing = Timing(read_latency=(3 << 32) + 5)
    model = ModelTransport(replace(CONFIGS["8x8"], counter_width=width), timing=timing)
    _, waited, counters = run(model, one_by_one())
    assert waited == 147 - 8 + (3 << 32) + 5
    assert counters["CYCLES"] == waited % (1 << width)
    assert model.read_reg(counter_offset("CYCLES") + 4) == {64: 3, 33: 1, 32: 0}[width]
    assert model.read_reg(counter_offset("CYCLES")) == 147 - 8 + 5


def test_busy_done_clear_and_irq():
    model = ModelTransport(CONFIGS["8x8"])
    start(model, one_by_one())
    assert model.read_reg(REG["STATUS"]) == STATUS_BUSY and not model.irq
    model.write_reg(desc_offset("KH"), 0)                 # ignored while busy
    assert model.read_reg(desc_offset("KH")) == 1
    model.write_reg(REG["CTRL"], CTRL_CLEAR | CTRL_START)  # ignored while busy
    with pytest.raises(DoneTimeout, match="not done after 50 cycles"):
        model.wait_done(50)
    assert model.read_reg(REG["STATUS"]) == STATUS_BUSY
    assert model.wait_done(97) == 97                      # 147 in all
    assert model.read_reg(REG["STATUS"]) == STATUS_DONE and model.irq
    assert model.wait_done(0) == 0                        # already done
    model.write_reg(REG["IRQ_ENABLE"], 0)
    assert not model.irq
    with pytest.raises(DoneTimeout, match="STATUS.done is set but IRQ_ENABLE is 0"):
        model.wait_done(1000)
    model.write_reg(REG["CTRL"], CTRL_CLEAR)
    assert model.read_reg(REG["STATUS"]) == 0
    with pytest.raises(DoneTimeout, match="idle"):
        model.wait_done(1000)


def test_wait_done_waits_for_the_irq_line():
    """Without IRQ_ENABLE the run finishes (STATUS.done) but wait_done times out."""
    model = ModelTransport(CONFIGS["8x8"])
    start(model, one_by_one())
    model.write_reg(REG["IRQ_ENABLE"], 0)
    with pytest.raises(DoneTimeout, match="irq not raised within 200 cycles"):
        model.wait_done(200)
    assert model.read_reg(REG["STATUS"]) == STATUS_DONE


def test_memory_access():
    model = ModelTransport(CONFIGS["8x8"], mem_size=4096)
    assert model.mem_size == 4096
    model.write_mem(4000, bytes(range(96)))
    assert model.read_mem(4000, 96) == bytes(range(96))
    model.write_mem(0, np.arange(5, dtype=np.uint8))
    assert model.read_mem(0, 6) == bytes([0, 1, 2, 3, 4, 0])
    with pytest.raises(ValueError, match="exceeds the model's 0x1000 bytes"):
        model.write_mem(4000, bytes(97))
    with pytest.raises(ValueError, match="addr must be an int >= 0"):
        model.read_mem(-1, 1)
    with pytest.raises(ValueError, match=r"mem_size must be an int in 1..65536 \(the 16-bit"):
        ModelTransport(AccelConfig(axi_addr_width=16), mem_size=1 << 17)
