"""The driver on the NumPy model: random Conv2d layers bit-exact against
conv2d_reference (+ requantize), the tiler's choices, and every refusal with
its message."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hw.config import AccelConfig, DESC_FIELDS, REG, VERSION
from sw_driver.cycles import Timing, simulate
from sw_driver.driver import Accelerator, AcceleratorError, Requant, STATS_KEYS
from sw_driver.layers import Conv2dParams
from sw_driver.model import ModelTransport
from sw_driver.quant import requantize
from sw_driver.reference import conv2d_reference
from sw_driver.program import conv2d_program
from sw_driver.tiler import choose_tile, plan_program
from sw_driver.transport import DoneTimeout


def plan_conv2d(cfg, conv, batch, in_h, in_w, *, requant, capacity):
    """The tiler's plan of a Conv2d (its only pass) on zero tensors."""
    x = np.zeros((batch, conv.in_channels, in_h, in_w), dtype=np.int8)
    zeros = np.zeros(conv.out_channels, dtype=np.int32)
    program = conv2d_program(x, np.zeros(conv.weight_shape, dtype=np.int8), conv,
                             zeros, zeros, zeros)
    plan = plan_program(cfg, program, requant=requant, capacity=capacity)
    assert len(plan.passes) == 1
    return plan

CONFIGS = {
    "8x8": AccelConfig(),
    "4x16": AccelConfig(rows=4, cols=16, in_depth=256, acc_depth=64),
    "3x5": AccelConfig(rows=3, cols=5, axi_data_width=32, in_depth=64, acc_depth=16),
}
ACCELERATORS = {name: Accelerator(ModelTransport(cfg, mem_size=4 << 20))
                for name, cfg in CONFIGS.items()}


def reference(x, w, bias, conv, requant):
    """conv2d_reference, then requantize per channel when `requant` is a Requant."""
    acc = conv2d_reference(x, w, bias, conv)
    if requant is None:
        return acc
    multiplier, shift = requant.per_channel(conv.out_channels)
    out = requantize(acc.transpose(0, 2, 3, 1), multiplier, shift, requant.zero_point,
                     requant.act_min, requant.act_max)
    return out.transpose(0, 3, 1, 2)


@st.composite
def layers(draw):
    """A random Conv2d layer, its tensors and a requantisation (or None)."""
    name = draw(st.sampled_from(sorted(CONFIGS)))
    depthwise = draw(st.booleans())
    if depthwise:
        groups = draw(st.integers(1, 40))
        in_per_group, out_per_group = 1, draw(st.integers(1, 2))
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3]))
        in_per_group = draw(st.integers(1, 40 // groups))
        out_per_group = draw(st.integers(1, 40 // groups))
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    height = draw(st.integers(max(1, kh - 2 * padding[0]), 13))
    width = draw(st.integers(max(1, kw - 2 * padding[1]), 13))
    batch = draw(st.integers(1, 2))
    conv = Conv2dParams(groups * in_per_group, groups * out_per_group, (kh, kw), stride=stride,
                        padding=padding, groups=groups)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 127, (batch, conv.in_channels, height, width), endpoint=True,
                     dtype=np.int8)
    w = rng.integers(-128, 127, conv.weight_shape, endpoint=True, dtype=np.int8)
    bias_kind = draw(st.sampled_from(["none", "small", "full"]))
    bias = {"none": None,
            "small": rng.integers(-5000, 5000, conv.out_channels, dtype=np.int32),
            "full": rng.integers(-2**31, 2**31 - 1, conv.out_channels, endpoint=True,
                                 dtype=np.int32)}[bias_kind]
    requant_kind = draw(st.sampled_from(["raw", "multiplier", "scale"]))
    requant = None
    if requant_kind != "raw":
        act_min = draw(st.integers(-128, 127))
        limits = dict(zero_point=draw(st.integers(-128, 127)), act_min=act_min,
                      act_max=draw(st.integers(act_min, 127)))
        if requant_kind == "multiplier":
            requant = Requant(
                multiplier=rng.integers(-2**31, 2**31 - 1, conv.out_channels, endpoint=True),
                shift=rng.integers(0, 31, conv.out_channels, endpoint=True), **limits)
        else:
            requant = Requant(scale=rng.uniform(1e-6, 0.02, conv.out_channels), **limits)
    return name, conv, x, w, bias, requant


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers())
def test_random_layers_are_bit_exact(layer):
    name, conv, x, w, bias, requant = layer
    accel = ACCELERATORS[name]
    cfg = accel.cfg
    y, stats = accel.conv2d(x, w, bias, stride=conv.stride, padding=conv.padding,
                            groups=conv.groups, requant=requant)
    expected = reference(x, w, bias, conv, requant)
    assert y.dtype == (np.int32 if requant is None else np.int8)
    np.testing.assert_array_equal(y, expected)
    assert accel.available == accel.memory_limit, "conv2d releases its memory"

    batch, _, in_h, in_w = x.shape
    plan = plan_conv2d(cfg, conv, batch, in_h, in_w, requant=requant is not None,
                       capacity=accel.memory_limit)
    assert stats["descriptors"] == batch * len(plan.passes[0].block_ranges)
    assert stats["macs_useful"] == batch * conv.macs(in_h, in_w) <= stats["macs_issued"]
    assert stats["macs_issued"] == stats["active_cycles"] * cfg.pes
    assert stats["stall_cycles"] == stats["cycles"] - stats["active_cycles"]
    assert stats["utilization"] == stats["macs_useful"] / (cfg.pes * stats["cycles"])
    for blocks in plan.passes[0].block_ranges:
        assert blocks.tile_h * blocks.tile_w <= cfg.acc_depth
        assert (((blocks.tile_h - 1) * conv.stride[0] + conv.kernel_size[0])
                * ((blocks.tile_w - 1) * conv.stride[1] + conv.kernel_size[1])) <= cfg.in_depth


def test_layer_with_every_kind_of_padding_channel():
    """Channels not multiples of R or C, groups spanning block boundaries, batch 3."""
    accel = ACCELERATORS["3x5"]
    rng = np.random.default_rng(11)
    conv = Conv2dParams(14, 21, (3, 4), stride=(2, 1), padding=(1, 2), groups=7)
    x = rng.integers(-128, 128, (3, 14, 9, 11), dtype=np.int8)
    w = rng.integers(-128, 128, conv.weight_shape, dtype=np.int8)
    bias = rng.integers(-10**6, 10**6, 21, dtype=np.int32)
    requant = {"scale": np.full(21, 0.003), "zero_point": -4, "act_min": -100, "act_max": 100}
    y, _ = accel.conv2d(x, w, bias, stride=(2, 1), padding=(1, 2), groups=7, requant=requant)
    np.testing.assert_array_equal(y, reference(x, w, bias, conv, Requant(**requant)))


# Descriptors and tiles.
def test_groups_1_uses_one_descriptor_per_image():
    plan = plan_conv2d(CONFIGS["8x8"], Conv2dParams(40, 70, 3, padding=1), 2, 9, 9,
                       requant=False, capacity=1 << 20)
    assert [(b.cob_start, b.cob_stop, b.cib_start, b.cib_stop) for b in plan.passes[0].block_ranges] \
        == [(0, 9, 0, 5)]
    assert len(plan.descriptors({name: 0 for name in plan.regions})) == 2


def test_depthwise_uses_one_descriptor_per_output_block():
    accel = ACCELERATORS["8x8"]
    plan = plan_conv2d(accel.cfg, Conv2dParams(64, 64, 3, padding=1, groups=64), 1, 8, 8,
                       requant=False, capacity=1 << 20)
    assert [(b.cob_start, b.cob_stop, b.cib_start, b.cib_stop) for b in plan.passes[0].block_ranges] \
        == [(k, k + 1, k, k + 1) for k in range(8)]
    assert plan.weights_bytes == 8 * 9 * 64            # one 8x8 block-diagonal matrix per tap


def test_groups_sharing_an_input_range_share_a_descriptor():
    """groups=2, 16 -> 32 channels on 8x8: output blocks 0, 1 read input block 0, 2, 3 block 1."""
    plan = plan_conv2d(CONFIGS["8x8"], Conv2dParams(16, 32, 1, groups=2), 1, 4, 4,
                       requant=True, capacity=1 << 20)
    assert [(b.cob_start, b.cob_stop, b.cib_start, b.cib_stop) for b in plan.passes[0].block_ranges] \
        == [(0, 2, 0, 1), (2, 4, 1, 2)]


@pytest.mark.parametrize("size", [16, 56, 100])
def test_whole_row_tiles_when_they_fit(size):
    cfg = CONFIGS["8x8"]
    plan = plan_conv2d(cfg, Conv2dParams(64, 64, 3, padding=1), 1, size, size, requant=False,
                       capacity=1 << 24)
    assert plan.passes[0].block_ranges[0].tile_w == size


def test_tile_choice_minimises_the_modelled_cycles_among_whole_rows():
    cfg = CONFIGS["8x8"]
    desc = {"IN_H": 40, "IN_W": 40, "OUT_H": 40, "OUT_W": 40, "KH": 3, "KW": 3, "SH": 1,
            "SW": 1, "PAD_T": 1, "PAD_L": 1, "MODE": 0, "CI_BLOCKS": 2, "CO_BLOCKS": 3}
    tile_h, tile_w = choose_tile(cfg, desc)
    assert tile_w == 40
    cycles = {h: simulate(cfg, {**desc, "TILE_H": h, "TILE_W": 40})["CYCLES"]
              for h in range(1, 26)}                  # 25 * 40 = 1000 <= acc_depth
    assert cycles[tile_h] <= min(cycles.values()) * 1.02


def test_large_layer_runs_in_well_under_a_second():
    accel = ACCELERATORS["8x8"]
    rng = np.random.default_rng(12)
    x = rng.integers(-128, 128, (1, 64, 32, 32), dtype=np.int8)
    w = rng.integers(-128, 128, (64, 64, 3, 3), dtype=np.int8)
    begin = time.perf_counter()
    y, stats = accel.conv2d(x, w, padding=1)
    assert time.perf_counter() - begin < 1.0
    np.testing.assert_array_equal(y, conv2d_reference(x, w, None, Conv2dParams(64, 64, 3,
                                                                              padding=1)))
    assert set(stats) == set(STATS_KEYS)
    assert stats["descriptors"] == 1


# Refusals, with their messages, before the device is touched.
class Recorder(ModelTransport):
    """A model that records every register and memory write."""

    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        self.writes = []

    def write_reg(self, offset, value):
        self.writes.append(("reg", offset))
        super().write_reg(offset, value)

    def write_mem(self, addr, data):
        self.writes.append(("mem", addr))
        super().write_mem(addr, data)


def conv_args(cin=8, cout=8, k=3, h=8, w=8, groups=1, seed=0):
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    return (rng.integers(-128, 128, (1, cin, h, w), dtype=np.int8),
            rng.integers(-128, 128, (cout, cin // groups, kh, kw), dtype=np.int8))


REFUSALS = [
    (dict(k=(8, 3), h=9), dict(),
     r"^kernel_size \(8, 3\) is not supported: the accelerator's kernel_max 7 allows 1..7$"),
    (dict(), dict(stride=(1, 5)),
     r"^stride \(1, 5\) is not supported: the accelerator's stride_max 4 allows 1..4$"),
    (dict(k=(7, 7), h=4, w=4), dict(),
     r"^output height must be >= 1, got -2 for input \(4, 4\)"),
    (dict(cin=6), dict(groups=4),
     r"^in_channels must be a multiple of groups=4, got 6$"),
    (dict(), dict(padding=-1),
     r"^padding must be >= 0 on both axes, got \(-1, -1\)$"),
    (dict(), dict(padding=40000),
     r"^padding \(40000, 40000\) is not supported: the 16-bit signed PAD_T/PAD_L field "
     r"allows -32768..32767$"),
    (dict(), dict(requant=dict(multiplier=1 << 30, shift=32)),
     r"^shift must be in 0..31, not 32$"),
    (dict(), dict(requant=dict(multiplier=1 << 31, shift=3)),
     r"^multiplier must be in -2147483648..2147483647, not 2147483648$"),
    (dict(), dict(requant=dict(multiplier=[1, 2], shift=3)),
     r"^multiplier must be a scalar or have shape \(8,\) \(one per output channel\), "
     r"not \(2,\)$"),
    (dict(), dict(requant=dict(scale=0.5, shift=3)),
     r"^requant scale and shift exclude each other: scale gives the shift$"),
    (dict(), dict(requant=dict(scale=1.5)),
     r"^scale\[0\] must be in the open interval \(0, 1\), not 1.5$"),
    (dict(), dict(requant=dict(multiplier=5, shift=1, scale=0.5)),
     r"^requant multiplier and scale exclude each other$"),
    (dict(), dict(requant=dict(multiplier=5)),
     r"^requant multiplier needs shift$"),
    (dict(), dict(requant=dict(shift=5)),
     r"^requant needs either multiplier \(with shift\) or scale$"),
    (dict(), dict(requant=dict(scale=0.1, act_min=10, act_max=-10)),
     r"^act_min must be <= act_max, not 10 > -10$"),
    (dict(), dict(requant=dict(scale=0.1, zero_point=128)),
     r"^zero_point must be an int in -128..127, not 128$"),
    (dict(), dict(requant=dict(scale=0.1, offset=3)),
     r"^requant has unknown keys \['offset'\]$"),
]


@pytest.mark.parametrize("tensors, options, message", REFUSALS)
def test_refusals_touch_nothing(tensors, options, message):
    transport = Recorder(CONFIGS["8x8"])
    accel = Accelerator(transport)
    assert transport.writes == [("reg", REG["IRQ_ENABLE"])]     # at open
    transport.writes.clear()
    x, w = conv_args(**tensors)
    with pytest.raises(ValueError, match=message):
        accel.conv2d(x, w, **options)
    assert transport.writes == []


def test_in_depth_too_small_for_one_pixel():
    transport = Recorder(AccelConfig(in_depth=16))
    x, w = conv_args(k=(5, 4))
    with pytest.raises(ValueError, match=r"^kernel_size \(5, 4\) is not supported: one output "
                                         r"pixel reads a 5x4 input window, the accelerator's "
                                         r"in_depth 16 allows at most 16 elements$"):
        Accelerator(transport).conv2d(x, w)
    assert transport.writes == [("reg", REG["IRQ_ENABLE"])]      # at open only


def test_memory_too_small():
    transport = Recorder(CONFIGS["8x8"], mem_size=4096)
    x, w = conv_args(cin=16, cout=16, h=12, w=12)
    with pytest.raises(ValueError, match=r"^accelerator memory too small: the layer needs 14016 "
                                         r"bytes \(input 2304, weights 2304, params 192, "
                                         r"output 9216\), 4096 are available$"):
        Accelerator(transport).conv2d(x, w, padding=1)
    assert transport.writes == [("reg", REG["IRQ_ENABLE"])]      # at open only


def test_tensor_checks():
    accel = ACCELERATORS["8x8"]
    x, w = conv_args()
    with pytest.raises(ValueError, match=r"^x dtype must be int8, got int16$"):
        accel.conv2d(x.astype(np.int16), w)
    with pytest.raises(ValueError, match=r"^x must be a 4-D numpy array, got \(8, 8, 8\)$"):
        accel.conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"^bias dtype must be int32, got int64$"):
        accel.conv2d(x, w, np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^w shape must be \(8, 4, 3, 3\), got \(8, 8, 3, 3\)"):
        accel.conv2d(x, w, groups=2)


def test_sizes_beyond_the_descriptor_fields():
    cfg = CONFIGS["8x8"]
    with pytest.raises(ValueError, match=r"^input size \(70000, 1\) is not supported: the "
                                         r"16-bit IN_H/IN_W field allows 1..65535$"):
        plan_conv2d(cfg, Conv2dParams(1, 1, 1), 1, 70000, 1, requant=False, capacity=1 << 30)
    with pytest.raises(ValueError, match=r"^in_channels 524288 is not supported: the 16-bit "
                                         r"CI_BLOCKS field with 8 channels per block allows "
                                         r"1..524280$"):
        plan_conv2d(cfg, Conv2dParams(1 << 19, 1, 1), 1, 1, 1, requant=False, capacity=1 << 30)


# Identification, descriptors, errors and time-outs.
class Forged(ModelTransport):
    """A model whose identification register `register` reads `value`."""

    def __init__(self, register, value):
        super().__init__(CONFIGS["8x8"])
        self.forged = (REG[register], value)

    def read_reg(self, offset):
        if offset == self.forged[0]:
            return self.forged[1]
        return super().read_reg(offset)


def test_identification_builds_the_configuration():
    for cfg in CONFIGS.values():
        accel = Accelerator(ModelTransport(cfg))
        assert accel.cfg == cfg
        assert accel.memory_limit == 64 << 20
    assert Accelerator(ModelTransport(AccelConfig(axi_addr_width=20))).memory_limit == 1 << 20
    assert Accelerator(Forged("VERSION", VERSION + 7)).cfg == CONFIGS["8x8"]   # newer minor


@pytest.mark.parametrize("register, value, message", [
    ("MAGIC", 0xDEADBEEF, r"^no accelerator found: MAGIC reads 0xdeadbeef, expected 0x434e5641$"),
    ("VERSION", 0x0002_0000, r"^unsupported accelerator version 2.0: this driver supports 1.x$"),
    ("HW_ROWS", 0, r"^the identification registers describe an unsupported configuration: "
                   r"rows must be in 1..64, not 0$"),
])
def test_identification_errors(register, value, message):
    with pytest.raises(AcceleratorError, match=message):
        Accelerator(Forged(register, value))


def valid_fields():
    return {"IN_BASE": 0, "IN_ELEM_PITCH": 8, "IN_ROW_PITCH": 16, "IN_BLK_PITCH": 32,
            "OUT_BASE": 0x1000, "OUT_ELEM_PITCH": 32, "OUT_ROW_PITCH": 64,
            "OUT_BLK_PITCH": 128, "W_BASE": 0x2000, "P_BASE": 0x3000, "IN_H": 2, "IN_W": 2,
            "OUT_H": 2, "OUT_W": 2, "CI_BLOCKS": 1, "CO_BLOCKS": 1, "KH": 1, "KW": 1,
            "SH": 1, "SW": 1, "PAD_T": 0, "PAD_L": 0, "TILE_H": 2, "TILE_W": 2, "MODE": 0,
            "OUT_ZP": 0, "ACT_MIN": -128, "ACT_MAX": 127}


def test_run_descriptor_returns_the_counters():
    accel = Accelerator(ModelTransport(CONFIGS["8x8"]))
    assert accel.run_descriptor(valid_fields())["CYCLES"] == 147
    cropped = {**valid_fields(), "PAD_T": -1, "PAD_L": -1}     # signed fields as ints
    assert accel.run_descriptor(cropped) == simulate(CONFIGS["8x8"], cropped)


@pytest.mark.parametrize("changes, code", [
    (dict(KH=0), "KERNEL"), (dict(PAD_T=1 << 15), "RANGE"), (dict(OUT_BASE=1 << 26), "DMA_WRITE"),
])
def test_run_descriptor_raises_the_error_name(changes, code):
    accel = Accelerator(ModelTransport(CONFIGS["8x8"]))
    with pytest.raises(AcceleratorError, match=rf"^accelerator error {code} \(code \d+\)$") \
            as raised:
        accel.run_descriptor({**valid_fields(), **changes})
    assert raised.value.code == code


def test_run_descriptor_checks_the_fields():
    accel = ACCELERATORS["8x8"]
    fields = valid_fields()
    fields["KX"] = fields.pop("KH")
    with pytest.raises(ValueError, match=r"^descriptor fields: missing \['KH'\], "
                                         r"unknown \['KX'\]$"):
        accel.run_descriptor(fields)
    with pytest.raises(ValueError, match=r"^descriptor field PAD_T must be an int in "
                                         r"-2147483648..2147483647 \(its 32-bit register\), "
                                         r"not 2147483648$"):
        accel.run_descriptor({**valid_fields(), "PAD_T": 1 << 31})
    assert len(DESC_FIELDS) == len(valid_fields())


def test_time_out_budget():
    """A device 100 times slower than the driver's cycle model misses the budget."""
    slow = ModelTransport(CONFIGS["8x8"], timing=Timing(read_latency=100_000))
    with pytest.raises(DoneTimeout, match="not done after 10588 cycles"):
        Accelerator(slow).run_descriptor(valid_fields())


def test_allocator():
    accel = Accelerator(ModelTransport(CONFIGS["8x8"], mem_size=256))
    first = accel.alloc(5)
    second = accel.alloc(8)
    assert (first, second, accel.available) == (0, 8, 240)
    with pytest.raises(ValueError, match=r"^accelerator memory full: 241 bytes requested, "
                                         r"240 available$"):
        accel.alloc(241)
    accel.release(second)
    assert accel.available == 248
    with pytest.raises(ValueError, match="was not allocated"):
        accel.release(64)
