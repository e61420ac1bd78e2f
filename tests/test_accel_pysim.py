"""The whole accelerator in Amaranth's simulator, driven by the real driver:
address generation, tiling edges, banks and the descriptor checks."""

import numpy as np
import pytest

from hw.config import AccelConfig, REG, ERROR, MAGIC, STATUS_DONE, STATUS_ERROR, \
    STATUS_BUSY, CTRL_START, CTRL_CLEAR, desc_offset, DESC_FIELDS
from sw_driver.cycles import DEFAULT_TIMING, prepare_cycles
from sw_driver.driver import Accelerator
from sw_driver.layers import Conv2dParams
from sw_driver.model import ModelTransport, decode_descriptor
from sw_driver.reference import conv2d_reference
from sw_driver.quant import requantize
from pysim_transport import PysimTransport


def random_layer(rng, cin, cout, k, groups=1, h=5, w=5):
    x = rng.integers(-128, 128, (1, cin, h, w), dtype=np.int8)
    weight = rng.integers(-128, 128, (cout, cin // groups, *k), dtype=np.int8)
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    return x, weight, bias


@pytest.mark.parametrize("shape, layer", [
    ((8, 8), dict(cin=12, cout=10, k=(3, 2), stride=(2, 1), padding=(1, 0))),
    ((8, 8), dict(cin=8, cout=8, k=(1, 1), stride=1, padding=0, h=1, w=1)),
    ((8, 8), dict(cin=16, cout=16, k=(3, 3), stride=1, padding=1, groups=16)),
    ((4, 16), dict(cin=9, cout=20, k=(3, 3), stride=3, padding=2, h=7, w=6)),
    ((3, 5), dict(cin=7, cout=6, k=(2, 4), stride=(1, 2), padding=(3, 1), h=3, w=4)),
])
def test_conv_bit_exact(shape, layer):
    rng = np.random.default_rng(sum(shape) + layer["cin"])
    groups = layer.get("groups", 1)
    x, weight, bias = random_layer(rng, layer["cin"], layer["cout"], layer["k"], groups,
                                   layer.get("h", 5), layer.get("w", 5))
    params = Conv2dParams(layer["cin"], layer["cout"], layer["k"], stride=layer["stride"],
                          padding=layer["padding"], groups=groups)
    with PysimTransport(AccelConfig(rows=shape[0], cols=shape[1])) as transport:
        y, stats = Accelerator(transport).conv2d(
            x, weight, bias, stride=layer["stride"], padding=layer["padding"], groups=groups)
    assert np.array_equal(y, conv2d_reference(x, weight, bias, params))
    assert stats["macs_issued"] >= stats["macs_useful"] > 0


@pytest.mark.parametrize("cfg", [
    # A tiny accumulator buffer forces many tiles with ragged edges.
    AccelConfig(acc_depth=16, in_depth=64),
    # Fewer lanes than int8 outputs fit a bus word, with DSP-style digits: the
    # iCEBreaker's configuration, and lanes that do not divide the columns.
    AccelConfig(rows=2, cols=2, axi_data_width=32, axi_addr_width=16, kernel_max=3,
                stride_max=2, in_depth=64, acc_depth=32, requant_lanes=1, requant_digit_bits=16,
                counter_width=32),
    AccelConfig(rows=3, cols=5, acc_depth=16, in_depth=64, requant_lanes=2,
                requant_digit_bits=16),
], ids=["8x8", "icebreaker", "3x5-2-lanes"])
def test_requantised_output_and_small_tiles(cfg):
    rng = np.random.default_rng(7)
    x, weight, bias = random_layer(rng, 10, 9, (3, 3), h=6, w=7)
    mult = rng.integers(1 << 30, (1 << 31) - 1, 9).astype(np.int32)
    shift = rng.integers(0, 12, 9).astype(np.int32)
    requant = dict(multiplier=mult, shift=shift, zero_point=-3, act_min=-100, act_max=90)

    def run(accel):
        return accel.conv2d(x, weight, bias, padding=1, requant=requant)

    with PysimTransport(cfg) as transport:
        y, stats = run(Accelerator(transport))
    acc = conv2d_reference(x, weight, bias, Conv2dParams(10, 9, 3, padding=1))
    expected = requantize(np.moveaxis(acc, 1, -1), mult, shift, -3, -100, 90)
    assert np.array_equal(y, np.moveaxis(expected, -1, 1))
    # The cycle model reads one pixel per `requant_groups` cycles, as the store stage does.
    with ModelTransport(cfg) as model:
        _, model_stats = run(Accelerator(model))
    assert abs(model_stats["cycles"] - stats["cycles"]) <= 0.02 * stats["cycles"] + 8, \
        (stats["cycles"], model_stats["cycles"])


@pytest.mark.parametrize("cfg", [
    AccelConfig(acc_depth=16, in_depth=64, requant_lanes=1),
    AccelConfig(rows=3, cols=5, acc_depth=16, in_depth=64, requant_lanes=2,
                requant_digit_bits=16),
], ids=["8x8-1-lane", "3x5-2-lanes"])
def test_few_lanes_set_the_pace_of_a_pointwise_layer(cfg):
    """A 1x1 convolution computes a pixel in fewer cycles than the lanes take
    for its channels: the store stage is the bottleneck, and the cycle model
    follows it."""
    rng = np.random.default_rng(11)
    x, weight, bias = random_layer(rng, 10, 9, (1, 1), h=6, w=7)
    requant = dict(multiplier=np.full(9, 1 << 30, np.int32), shift=np.full(9, 3, np.int32),
                   zero_point=1, act_min=-128, act_max=127)

    def run(accel):
        return accel.conv2d(x, weight, bias, requant=requant)

    with PysimTransport(cfg) as transport:
        y, stats = run(Accelerator(transport))
    with ModelTransport(cfg) as model:
        expected, model_stats = run(Accelerator(model))
    assert np.array_equal(y, expected)
    assert stats["cycles"] > 40 * cfg.requant_groups, "the store stage sets the pace"
    assert abs(model_stats["cycles"] - stats["cycles"]) <= 0.02 * stats["cycles"] + 8, \
        (stats["cycles"], model_stats["cycles"])


def test_identification_registers():
    cfg = AccelConfig(rows=4, cols=16, in_depth=512)
    with PysimTransport(cfg) as transport:
        assert transport.read_reg(REG["MAGIC"]) == MAGIC
        assert transport.read_reg(REG["HW_ROWS"]) == 4
        assert transport.read_reg(REG["HW_COLS"]) == 16
        assert transport.read_reg(REG["HW_IN_DEPTH"]) == 512
        assert Accelerator(transport).cfg == cfg


def test_register_file_reads():
    """Every descriptor register reads back the value the hardware keeps: what
    was written when it fits the field, else its low bits (sign-extended for
    signed fields, as model reads them); CTRL (write-only) and unmapped
    addresses in and between the read multiplexer's groups read 0."""
    with PysimTransport(AccelConfig()) as transport:
        for pattern in (0x9E3779B9, 0x7F4A7C15):
            written = {name: (pattern * (index + 1)) & 0xFFFF_FFFF
                       for index, (name, _, _) in enumerate(DESC_FIELDS)}
            for name, value in written.items():
                transport.write_reg(desc_offset(name), value)
            kept, _ = decode_descriptor(written)
            for name, value in kept.items():
                assert transport.read_reg(desc_offset(name)) == value & 0xFFFF_FFFF, name
        assert transport.read_reg(REG["VERSION"]) != 0
        for unmapped in (REG["CTRL"], 0x030, 0x07C, REG["DESC"] + 4 * len(DESC_FIELDS),
                         0x200, 0xFFC):
            assert transport.read_reg(unmapped) == 0, hex(unmapped)


def test_register_writes_take_their_byte_lanes():
    with PysimTransport(AccelConfig()) as transport:
        offset = desc_offset("IN_ROW_PITCH")
        transport.write_reg(offset, 0x1122_3344)
        transport.write_reg(offset, 0xAABB_CCDD, strobes=0b0101)
        assert transport.read_reg(offset) == 0x11BB_33DD
        transport.write_reg(offset, 0xAABB_CCDD, strobes=0b1010)
        assert transport.read_reg(offset) == 0xAABB_CCDD
        # CTRL.start is bit 0: without byte lane 0 nothing starts.
        transport.write_reg(REG["CTRL"], CTRL_START, strobes=0b1110)
        assert transport.read_reg(REG["STATUS"]) & STATUS_BUSY == 0


VALID = dict(IN_BASE=0, IN_ELEM_PITCH=8, IN_ROW_PITCH=32, IN_BLK_PITCH=8,
             OUT_BASE=0x1000, OUT_ELEM_PITCH=32, OUT_ROW_PITCH=128, OUT_BLK_PITCH=32,
             W_BASE=0x2000, P_BASE=0x3000, IN_H=4, IN_W=4, OUT_H=4, OUT_W=4,
             CI_BLOCKS=1, CO_BLOCKS=1, KH=3, KW=3, SH=1, SW=1, PAD_T=1, PAD_L=1,
             TILE_H=4, TILE_W=4, MODE=0, OUT_ZP=0, ACT_MIN=-128, ACT_MAX=127)

BAD = [
    ("KERNEL", dict(KH=0)), ("KERNEL", dict(KW=8)),
    ("STRIDE", dict(SH=5)), ("STRIDE", dict(SW=0)),
    ("SHAPE", dict(IN_H=0)), ("SHAPE", dict(OUT_W=0)),
    ("BLOCKS", dict(CI_BLOCKS=0)),
    ("TILE", dict(TILE_H=0)), ("TILE", dict(TILE_H=40, TILE_W=40)),
    ("TILE", dict(TILE_W=1 << 20)),
    ("WINDOW", dict(TILE_H=32, TILE_W=32, SH=4, SW=4)),
    ("ALIGN", dict(OUT_ROW_PITCH=12)), ("ALIGN", dict(W_BASE=0x2004)),
    ("RANGE", dict(PAD_T=1 << 16)), ("RANGE", dict(MODE=2)), ("RANGE", dict(OUT_ZP=200)),
    # The checks see the whole register: KH's kept bits are 3, IN_H's 0.
    ("KERNEL", dict(KH=0x103)), ("RANGE", dict(IN_H=0x10000)), ("RANGE", dict(PAD_L=-40000)),
    ("ACT", dict(ACT_MIN=5, ACT_MAX=4)),
]


def test_invalid_descriptors_are_refused():
    """Each bad field gives its error code; the engine stays usable."""
    with PysimTransport(AccelConfig()) as transport:
        transport.write_reg(REG["IRQ_ENABLE"], 1)
        for expected, change in BAD:
            for name, value in {**VALID, **change}.items():
                transport.write_reg(desc_offset(name), value & 0xFFFF_FFFF)
            transport.write_reg(REG["CTRL"], CTRL_CLEAR)
            transport.write_reg(REG["CTRL"], CTRL_START)
            regs = {name: value & 0xFFFF_FFFF for name, value in {**VALID, **change}.items()}
            waited = transport.wait_done(500)
            # Refused after the dispatcher's products, exactly when the model says.
            assert waited == DEFAULT_TIMING.reject + prepare_cycles(
                AccelConfig(), decode_descriptor(regs)[0]), (expected, change)
            status = transport.read_reg(REG["STATUS"])
            assert status & (STATUS_DONE | STATUS_ERROR | STATUS_BUSY) == STATUS_DONE | STATUS_ERROR
            assert (status >> 8) & 0xFF == ERROR[expected], (expected, change)
        # CLEAR drops done and error.
        transport.write_reg(REG["CTRL"], CTRL_CLEAR)
        assert transport.read_reg(REG["STATUS"]) == 0
        # A valid descriptor afterwards still runs to completion.
        for name, value in VALID.items():
            transport.write_reg(desc_offset(name), value & 0xFFFF_FFFF)
        transport.write_reg(REG["CTRL"], CTRL_START)
        transport.wait_done(5000)
        assert transport.read_reg(REG["STATUS"]) == STATUS_DONE


def test_range_follows_byte_lane_writes():
    """A field's range check sees the register its byte-lane writes left,
    though only the field's bits are kept (and read back)."""
    with PysimTransport(AccelConfig()) as transport:
        transport.write_reg(REG["IRQ_ENABLE"], 1)
        pad_t = desc_offset("PAD_T")
        for writes, expected, reads in (
                ([(0xFFFF_FFFF, 0b1111)], None, 0xFFFF_FFFF),                      # -1
                ([(0xFFFF_FFFF, 0b1111), (0, 0b0010)], "RANGE", 0xFF),            # 0xFFFF00FF
                ([(0xFFFF_FFFF, 0b1111), (0, 0b1100)], "RANGE", 0xFFFF_FFFF),     # 0x0000FFFF
                ([(0x0001_0001, 0b1111), (0, 0b0100)], None, 1),                  # 0x00000001
                ([(1, 0b1111), (0xFF00_0000, 0b1000)], "RANGE", 1)):              # 0xFF000001
            for name, value in VALID.items():
                transport.write_reg(desc_offset(name), value & 0xFFFF_FFFF)
            for value, strobes in writes:
                transport.write_reg(pad_t, value, strobes=strobes)
            assert transport.read_reg(pad_t) == reads, writes
            transport.write_reg(REG["CTRL"], CTRL_CLEAR)
            transport.write_reg(REG["CTRL"], CTRL_START)
            transport.wait_done(5000)
            code = (transport.read_reg(REG["STATUS"]) >> 8) & 0xFF
            assert code == (ERROR[expected] if expected else 0), writes


def test_descriptor_is_locked_while_busy():
    with PysimTransport(AccelConfig()) as transport:
        for name, value in VALID.items():
            transport.write_reg(desc_offset(name), value & 0xFFFF_FFFF)
        transport.write_reg(REG["CTRL"], CTRL_START)
        assert transport.read_reg(REG["STATUS"]) & STATUS_BUSY
        transport.write_reg(desc_offset("KH"), 0)       # ignored while busy
        transport.write_reg(REG["CTRL"], CTRL_START)    # ignored while busy
        transport.write_reg(REG["IRQ_ENABLE"], 1)
        transport.wait_done(5000)
        assert transport.read_reg(desc_offset("KH")) == 3
        assert transport.read_reg(REG["STATUS"]) == STATUS_DONE
