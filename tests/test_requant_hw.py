# amaranth: UnusedElaboratable=no
# (the constructor error tests build components that are never elaborated)
"""RequantLane and Requantizer against the golden model `sw_driver.quant.requantize`.

Every test streams one input per cycle with a few bubbles, so it checks full
pipelining and that outputs appear exactly `latency` cycles after their inputs.
"""

import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.config import AccelConfig
from hw.requant import RequantLane, Requantizer
from sw_driver.quant import INT32_MAX, INT32_MIN, requantize, srdhm

from dsp_models import on_modelled_ecp5

EXTREME_INT32 = np.array([INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30,
                          INT32_MAX - 1, INT32_MAX])


# (acc, mult, shift) halving to exactly odd / 2 in the rounding divide, every shift 1..31.
POT_TIES = np.array([(-(odd << (shift - 1)), INT32_MIN, shift)
                     for shift in range(1, 32) for odd in (-3, -1, 1, 3)
                     if INT32_MIN <= odd << (shift - 1) <= INT32_MAX])


def lane_stimulus(rng, count):
    """`count` per-lane inputs (acc, mult, shift) mixing four kinds of cases."""
    kind = rng.integers(0, 4, count)
    acc = rng.integers(INT32_MIN, INT32_MAX, count, endpoint=True)
    mult = rng.integers(INT32_MIN, INT32_MAX, count, endpoint=True)
    shift = rng.integers(0, 32, count)

    # Realistic: positive normalised multipliers, small shifts, moderate accumulators.
    realistic = kind == 1
    acc[realistic] = rng.integers(-(1 << 20), 1 << 20, realistic.sum())
    mult[realistic] = rng.integers(1 << 30, INT32_MAX, realistic.sum(), endpoint=True)
    shift[realistic] = rng.integers(0, 16, realistic.sum())

    # Ties: srdhm(acc, INT32_MIN) is exactly -acc, so acc = -odd * 2**(shift - 1)
    # is half way for the rounding divide; mult = 2**30 halves acc, so an odd
    # acc is a tie inside srdhm itself.
    ties = np.flatnonzero(kind == 2)
    pot_ties, srdhm_ties = ties[::2], ties[1::2]
    acc[pot_ties], mult[pot_ties], shift[pot_ties] = POT_TIES[
        rng.integers(0, len(POT_TIES), pot_ties.size)].T
    acc[srdhm_ties] = 2 * rng.integers(-1000, 1000, srdhm_ties.size) + 1
    mult[srdhm_ties] = 1 << 30

    # Extremes, including the saturating INT32_MIN * INT32_MIN.
    extreme = np.flatnonzero(kind == 3)
    acc[extreme] = rng.choice(EXTREME_INT32, extreme.size)
    mult[extreme] = rng.choice(EXTREME_INT32, extreme.size)
    shift[extreme] = rng.choice([0, 1, 30, 31], extreme.size)
    acc[extreme[::4]] = mult[extreme[::4]] = INT32_MIN
    return acc, mult, shift


def shared_stimulus(rng, count):
    """Zero points, activation bounds and valid flags, one per cycle."""
    zero_point = rng.integers(-128, 128, count)
    zero_point[::7] = rng.choice([-128, 127], zero_point[::7].size)
    bounds = np.sort(rng.integers(-128, 128, (count, 2)), axis=1)
    bounds[::3] = [-128, 127]
    valid = rng.random(count) < 0.85
    return zero_point, bounds[:, 0], bounds[:, 1], valid


def stream(dut, stimuli, outputs, top=None):
    """Drive one dict of port values per cycle, then idle; sample `outputs`
    after every tick. `top` (default `dut`) is what is simulated: `dut` in
    a wrapper."""
    samples = []

    async def testbench(ctx):
        for inputs in stimuli + [{"valid": 0}] * dut.latency:
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
            samples.append([ctx.get(signal) for signal in outputs])

    sim = Simulator(dut if top is None else top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return samples


def pack(values, width):
    mask = (1 << width) - 1
    return sum((int(value) & mask) << (width * index) for index, value in enumerate(values))


def unpack(word, width, count):
    lanes = [(word >> (width * index)) & ((1 << width) - 1) for index in range(count)]
    return [lane - (1 << width) if lane >> (width - 1) else lane for lane in lanes]


def check_latency(valid, samples, latency):
    """valid_out (last sampled output) is `valid` delayed by exactly `latency` cycles."""
    valid_out = [sample[-1] for sample in samples]
    assert valid_out == [0] * (latency - 1) + [int(v) for v in valid] + [0]


def test_lane_latency():
    assert RequantLane.latency == RequantLane().latency == RequantLane(16).latency == 11


# The 16-bit digits also on the ECP5, where the lane instantiates its
# MULT18X18Ds (simulated by a model of the DSP).
LANE_VARIANTS = [(8, False), (16, False), (16, True)]


def lane_under_test(digit_bits, on_ecp5, monkeypatch):
    """(lane, what to simulate)."""
    lane = RequantLane(digit_bits)
    return lane, on_modelled_ecp5(lane, monkeypatch) if on_ecp5 else lane


@pytest.mark.parametrize("digit_bits, on_ecp5", LANE_VARIANTS)
def test_lane_matches_golden_model(digit_bits, on_ecp5, monkeypatch):
    rng = np.random.default_rng(1)
    acc, mult, shift = (np.concatenate(parts) for parts in zip(POT_TIES.T, lane_stimulus(rng, 500)))
    count = acc.size
    zero_point, act_min, act_max, valid = shared_stimulus(rng, count)
    dut, top = lane_under_test(digit_bits, on_ecp5, monkeypatch)
    stimuli = [{"acc": int(acc[t]), "mult": int(mult[t]), "shift": int(shift[t]),
                "zero_point": int(zero_point[t]), "act_min": int(act_min[t]),
                "act_max": int(act_max[t]), "valid": int(valid[t])} for t in range(count)]
    samples = stream(dut, stimuli, [dut.result, dut.valid_out], top)

    check_latency(valid, samples, dut.latency)
    expected = requantize(acc, mult, shift, zero_point, act_min, act_max)
    results = np.array([sample[0] for sample in samples[dut.latency - 1:][:count]])
    np.testing.assert_array_equal(results[valid], expected[valid])


def test_lane_inverted_bounds_give_act_max():
    # The driver refuses act_min > act_max; the hardware then returns act_max,
    # as TFLite's min(max(x, act_min), act_max) would.
    # Values on both sides of and at each bound, whose quotient is acc itself.
    dut = RequantLane()
    accs = [-100, *range(-12, 13), 100]
    stimuli = [{"acc": acc, "mult": INT32_MAX, "shift": 0, "zero_point": 0,
                "act_min": 10, "act_max": -10, "valid": 1} for acc in accs]
    samples = stream(dut, stimuli, [dut.result, dut.valid_out])
    assert [sample[0] for sample in samples[dut.latency - 1:][:len(accs)]] == [-10] * len(accs)


@pytest.mark.parametrize("digit_bits, on_ecp5", LANE_VARIANTS)
def test_lane_multiplies_every_digit_pair(digit_bits, on_ecp5, monkeypatch):
    """Each digit of acc against each digit of mult at its extreme values, and
    their mixes with the other digits zero or all ones: a misplaced or
    mis-signed digit product changes srdhm's leading bits, which the shift
    chosen per pair brings into int8 range unsaturated."""
    digit_values = [0, 1, 0x7F, 0x80, 0xFF] if digit_bits == 8 else [0, 1, 0x7FFF, 0x8000, 0xFFFF]
    words = set(EXTREME_INT32.tolist())
    for k in range(32 // digit_bits):
        for value in digit_values:
            for background in (0, 0xFFFF_FFFF):
                mask = ((1 << digit_bits) - 1) << (digit_bits * k)
                word = background & ~mask | value << (digit_bits * k)
                words.add(word - (1 << 32) if word >> 31 else word)
    words = np.array(sorted(words))
    acc, mult = (grid.ravel() for grid in np.meshgrid(words, words))
    high = np.abs(srdhm(acc, mult).astype(np.int64))
    shift = np.clip([int(value).bit_length() - 6 for value in high], 0, 31)
    dut, top = lane_under_test(digit_bits, on_ecp5, monkeypatch)
    stimuli = [{"acc": int(a), "mult": int(b), "shift": int(s), "zero_point": 0,
                "act_min": -128, "act_max": 127, "valid": 1} for a, b, s in zip(acc, mult, shift)]
    samples = stream(dut, stimuli, [dut.result, dut.valid_out], top)
    results = np.array([sample[0] for sample in samples[dut.latency - 1:][:acc.size]])
    expected = requantize(acc, mult, shift, 0, -128, 127)
    # Every large srdhm lands in 32..64 in magnitude: its six leading bits, never saturated.
    magnitude = np.abs(expected.astype(np.int64))
    assert np.all((high < 64) | ((magnitude >= 32) & (magnitude <= 64)))
    assert np.sum(high >= 64) > acc.size // 2
    np.testing.assert_array_equal(results, expected)


@pytest.mark.parametrize("value", [0, 4, 12, 32, "16"])
def test_lane_refuses_digit_bits(value):
    with pytest.raises(ValueError, match=f"^digit_bits must be 8 or 16, not {re.escape(repr(value))}$"):
        RequantLane(value)


def test_lane_on_ecp5_registers_its_products_in_four_dsps():
    """On the ECP5 the 16-bit-digit lane's four digit products are MULT18X18Ds
    with their input and output registers (`hw.dsp`), unsigned, and yosys
    has no multiplication left to map; the 8-bit-digit lane stays in LUTs."""
    from amaranth.back import rtlil
    from hw.board.boards import get_board
    text = rtlil.convert(RequantLane(16), platform=get_board("ulx3s"), name="lane")
    assert text.count("cell \\MULT18X18D") == 4
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert text.count(f'parameter \\REG_{register}_CLK "CLK0"') == 4
    assert len(re.findall(r"connect \\SIGNEDA \\partial_\d_\d_zero \[0\]", text)) == 4
    assert "$mul" not in text
    assert "MULT18X18D" not in rtlil.convert(RequantLane(8), platform=get_board("ulx3s"),
                                             name="lane")
    assert "MULT18X18D" not in rtlil.convert(RequantLane(16), name="lane")


@pytest.mark.parametrize("cols, bus, lanes_parameter, digit_bits, lanes", [
    (1, 64, 0, 8, 1), (8, 64, 0, 8, 8), (12, 64, 0, 8, 8), (5, 32, 0, 8, 4), (12, 128, 0, 8, 12),
    (2, 32, 1, 16, 1), (12, 64, 3, 16, 3), (5, 64, 2, 16, 2)])
def test_requantizer_matches_golden_model(cols, bus, lanes_parameter, digit_bits, lanes):
    """By default as many lanes as int8 outputs fit a bus word, at most C."""
    dut = Requantizer(AccelConfig(cols=cols, axi_data_width=bus, requant_lanes=lanes_parameter,
                                  requant_digit_bits=digit_bits))
    assert dut.lanes == lanes
    rng = np.random.default_rng(cols + bus)
    count = 400
    acc, mult, shift = (column.reshape(count, lanes) for column in lane_stimulus(rng, count * lanes))
    zero_point, act_min, act_max, valid = shared_stimulus(rng, count)
    # Only the low 5 bits of each 32-bit shift word count.
    shift_words = shift | (rng.integers(0, 1 << 27, (count, lanes)) << 5)
    stimuli = [{"acc": pack(acc[t], 32), "mult": pack(mult[t], 32),
                "shift": pack(shift_words[t], 32), "zero_point": int(zero_point[t]),
                "act_min": int(act_min[t]), "act_max": int(act_max[t]),
                "valid": int(valid[t])} for t in range(count)]
    samples = stream(dut, stimuli, [dut.result, dut.raw, dut.valid_out])

    assert dut.latency == RequantLane.latency
    check_latency(valid, samples, dut.latency)
    aligned = samples[dut.latency - 1:][:count]
    results = np.array([unpack(sample[0], 8, lanes) for sample in aligned])
    raw = np.array([unpack(sample[1], 32, lanes) for sample in aligned])
    expected = requantize(acc, mult, shift, zero_point[:, None], act_min[:, None], act_max[:, None])
    np.testing.assert_array_equal(results[valid], expected[valid])
    np.testing.assert_array_equal(raw[valid], acc[valid])


@pytest.mark.parametrize("cfg", [None, 8, {"cols": 8}])
def test_requantizer_refuses_non_config(cfg):
    with pytest.raises(TypeError, match=f"^cfg must be an AccelConfig, not {re.escape(repr(cfg))}$"):
        Requantizer(cfg)
