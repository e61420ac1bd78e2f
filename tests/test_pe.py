# amaranth: UnusedElaboratable=no
# (the constructor error tests build components that are never elaborated)
"""PE and PEArray against NumPy, streaming a new input every cycle."""

import re

import numpy as np
import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed
from amaranth.sim import Simulator

from hw.config import AccelConfig
from hw.pe import COLS_PER_X_COPY, PE, PEArray

from dsp_models import on_modelled_ecp5


def pack(values, width):
    mask = (1 << width) - 1
    return sum((int(value) & mask) << (width * index) for index, value in enumerate(values))


def unpack(word, width, count):
    lanes = [(word >> (width * index)) & ((1 << width) - 1) for index in range(count)]
    return [lane - (1 << width) if lane >> (width - 1) else lane for lane in lanes]


def run(dut, drive, outputs, cycles):
    """Call `drive(ctx, cycle)` for `cycles` cycles; sample `outputs` after every tick."""
    samples = []

    async def testbench(ctx):
        for cycle in range(cycles):
            drive(ctx, cycle)
            await ctx.tick()
            samples.append([ctx.get(signal) for signal in outputs])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return samples


class EveryProduct(Elaboratable):
    """256 PEs, PE i multiplying `w` by the constant i - 128: all pairs in 256 cycles."""

    def __init__(self):
        self.w = Signal(signed(8))
        self.products = Signal(256 * 16)
        self.pes = [PE() for _ in range(256)]

    def elaborate(self, platform):
        m = Module()
        for index, pe in enumerate(self.pes):
            m.submodules[f"pe_{index}"] = pe
            m.d.comb += [pe.w.eq(self.w), pe.x.eq(index - 128)]
        m.d.comb += self.products.eq(Cat(pe.product for pe in self.pes))
        return m


@pytest.mark.parametrize("platform", [None, "ulx3s"])
def test_pe_every_int8_pair(platform, monkeypatch):
    """Every int8 pair through the plain PE and through the ECP5 PE, whose
    MULT18X18D wiring (operands in the top bits of A and B, the product from
    P's top bits) runs against a model of the DSP, with the same latency."""
    every = EveryProduct()
    dut = every if platform is None else on_modelled_ecp5(every, monkeypatch)
    weights = list(range(-128, 128))
    samples = run(dut, lambda ctx, cycle: ctx.set(every.w, weights[min(cycle, 255)]),
                  [every.products], 257)
    x = np.arange(-128, 128)
    assert PE.latency == 2
    # Product of the weight driven before tick t is visible right after tick t + 1.
    assert unpack(samples[0][0], 16, 256) == [0] * 256
    for w, (products,) in zip(weights, samples[1:]):
        assert unpack(products, 16, 256) == (w * x).tolist()


def test_pe_ports():
    pe = PE()
    assert pe.w.shape() == signed(8) and pe.x.shape() == signed(8)
    assert pe.product.shape() == signed(16)


def extreme_vectors(rows, cols):
    """(x, w) pairs at the corners of the int8 range, plus zero and a checkerboard."""
    vectors = []
    for x_value, w_value in [(-128, -128), (-128, 127), (127, -128), (127, 127), (0, -128),
                             (-128, 0), (1, -1), (-1, -1)]:
        vectors.append((np.full(rows, x_value), np.full(rows * cols, w_value)))
    checker = np.where(np.indices((rows, cols)).sum(axis=0) % 2, 127, -128).ravel()
    vectors.append((np.full(rows, -128), checker))
    return vectors


@pytest.mark.parametrize("rows, cols", [(1, 1), (8, 8), (4, 16), (12, 12), (3, 5), (2, 3), (64, 2)])
def test_pe_array_matches_numpy(rows, cols):
    """Every column against NumPy, on the pixel copy of its group of columns:
    the copies carry different pixels (the random vectors), so a column wired
    to another group's copy fails."""
    rng = np.random.default_rng(rows * 100 + cols)
    dut = PEArray(AccelConfig(rows=rows, cols=cols))
    copies = dut.x_copies
    assert copies == -(-cols // COLS_PER_X_COPY)
    vectors = [(np.tile(x, (copies, 1)), w) for x, w in extreme_vectors(rows, cols)] + [
        (rng.integers(-128, 128, (copies, rows)), rng.integers(-128, 128, rows * cols))
        for _ in range(60)]
    valid = rng.random(len(vectors)) < 0.85

    def drive(ctx, cycle):
        if cycle < len(vectors):
            x, w = vectors[cycle]
            ctx.set(dut.x, pack(x.ravel(), 8))
            ctx.set(dut.w, pack(w, 8))
        ctx.set(dut.valid, int(cycle < len(vectors) and valid[cycle]))

    samples = run(dut, drive, [dut.sums, dut.valid_out], len(vectors) + dut.latency)

    # Input of cycle t is visible after tick t + latency - 1, and not earlier.
    assert [s[1] for s in samples] == [0] * (dut.latency - 1) + valid.astype(int).tolist() + [0]
    group = np.arange(cols) // COLS_PER_X_COPY
    for cycle, (x, w) in enumerate(vectors):
        products = x.astype(np.int64)[group].T * w.astype(np.int64).reshape(rows, cols)
        sums = unpack(samples[cycle + dut.latency - 1][0], dut.sum_width, cols)
        assert sums == products.sum(axis=0).tolist(), f"vector {cycle}"


@pytest.mark.parametrize("rows, sum_width, latency", [
    (1, 16, 2), (2, 17, 3), (3, 18, 4), (4, 18, 4), (5, 19, 4), (8, 19, 4), (12, 20, 5),
    (16, 20, 5), (17, 21, 5), (64, 22, 6),
])
def test_pe_array_widths_and_latency(rows, sum_width, latency):
    dut = PEArray(AccelConfig(rows=rows, cols=3))
    assert (dut.sum_width, dut.latency) == (sum_width, latency)
    assert len(dut.x) == 8 * rows and len(dut.w) == 8 * rows * 3
    assert len(dut.sums) == 3 * sum_width


@pytest.mark.parametrize("cfg", [None, 8, {"rows": 8, "cols": 8}])
def test_pe_array_refuses_non_config(cfg):
    with pytest.raises(TypeError, match=f"^cfg must be an AccelConfig, not {re.escape(repr(cfg))}$"):
        PEArray(cfg)


@pytest.mark.parametrize("data_width", [0, -1, 8.0, True, "8"])
def test_pe_refuses_bad_data_width(data_width):
    with pytest.raises(TypeError, match=f"^data_width must be a positive integer, not {re.escape(repr(data_width))}$"):
        PE(data_width=data_width)


def test_pe_on_ecp5_is_one_registered_dsp():
    """For the ECP5 the PE is a MULT18X18D using its input and output registers
    (the same latency), signed, clocked by the sync domain, its registers not
    reset (the array's valid bits are)."""
    from amaranth.back import rtlil
    from hw.board.boards import get_board
    text = rtlil.convert(PE(), platform=get_board("ulx3s"), name="pe")
    assert text.count("cell \\MULT18X18D") == 1
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert f'parameter \\REG_{register}_CLK "CLK0"' in text
    assert 'parameter \\REG_PIPELINE_CLK' not in text
    assert "connect \\RST0 \\dsp_zero [0]" in text and "connect \\CE0 \\dsp_one [0]" in text
    assert "connect \\SIGNEDA \\dsp_one [0]" in text
    assert "$mul" not in text
    assert "MULT18X18D" not in rtlil.convert(PE(), name="pe")
